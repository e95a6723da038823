package daemon

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"banger/internal/network"
	"banger/internal/vmm"
)

// capsBackend is a backend with the given capabilities; nothing else of it
// is called.
type capsBackend struct {
	vmm.Backend
	caps vmm.Caps
}

func (b capsBackend) Name() string   { return "fakevmm" }
func (b capsBackend) Caps() vmm.Caps { return b.caps }

// Without a bridge, a backend with user-mode networking gets it; one
// without is refused with the reason the bridge is unavailable.
func TestVMNetworkFallsBackByCaps(t *testing.T) {
	t.Setenv("BANGER_NETWORK", "user")
	d := &Daemon{log: slog.New(slog.DiscardHandler)}
	netw, nm, err := d.vmNetwork(context.Background(), capsBackend{caps: vmm.Caps{UserNet: true}})
	if err != nil || nm != nil {
		t.Fatalf("user-mode backend: %v, bridge %v", err, nm)
	}
	u, ok := netw.(*network.UserMode)
	if !ok || !strings.Contains(u.Reason, "BANGER_NETWORK=user") {
		t.Fatalf("network = %#v, want user mode saying why", netw)
	}
	_, _, err = d.vmNetwork(context.Background(), capsBackend{})
	if err == nil || !strings.Contains(err.Error(), "fakevmm needs bridge networking") || !strings.Contains(err.Error(), "BANGER_NETWORK=user") {
		t.Fatalf("backend without user-mode networking: %v", err)
	}
}

// --vmm picks a registered backend by name; an unknown name lists them.
func TestBackendRegistry(t *testing.T) {
	for _, name := range []string{"qemu", "firecracker"} {
		if backends[name] == nil {
			t.Errorf("backend %q is not registered", name)
		}
	}
	d := &Daemon{opts: Options{VMM: "bhyve"}, log: slog.New(slog.DiscardHandler)}
	_, _, err := d.backend(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), `--vmm "bhyve": use firecracker or qemu`) {
		t.Fatalf("unknown backend: %v", err)
	}
}
