package vm

import "testing"

func TestGuestCmdlineAppendsDebugArgs(t *testing.T) {
	t.Setenv(EnvGuestKernelArgs, "")
	if got := guestCmdline(); got != baseCmdline {
		t.Fatalf("without %s: %q", EnvGuestKernelArgs, got)
	}
	t.Setenv(EnvGuestKernelArgs, "  loglevel=7\tinitcall_debug ")
	if got, want := guestCmdline(), baseCmdline+" loglevel=7 initcall_debug"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
