package e2e

import (
	"strings"
	"testing"
)

// TestUserModeNetworking: without bridge networking (forced here; the same
// happens without root or CAP_NET_ADMIN) VMs use QEMU user-mode networking
// with SSH forwarded on loopback, and the daemon says what is not available.
func TestUserModeNetworking(t *testing.T) {
	d := newDaemonEnv(t, "BANGER_NETWORK=user")
	defer d.cleanup()
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")
	d.must(t, "vm", "create", "--name", "u1", "--image", "bb", "--memory", "256", "--vcpus", "1")
	var vm struct {
		Network string `json:"network"`
		SSHPort int    `json:"ssh_port"`
	}
	d.mustJSON(t, &vm, "vm", "show", "u1")
	if vm.Network != "user" || vm.SSHPort == 0 {
		t.Fatalf("vm = %+v", vm)
	}
	if out := d.must(t, "vm", "exec", "u1", "--", "hostname"); strings.TrimSpace(out) != "u1" {
		t.Fatalf("hostname %q", out)
	}
	if _, errOut, code := d.run("vm", "set", "u1", "--nat=true"); code == 0 || !strings.Contains(errOut, "user-mode") {
		t.Fatalf("nat switch under user-mode networking: exit %d %s", code, errOut)
	}
	d.must(t, "vm", "stop", "u1")
	d.must(t, "vm", "start", "u1")
	d.must(t, "vm", "delete", "--force", "u1")
}
