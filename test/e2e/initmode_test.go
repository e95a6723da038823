package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageInitHandover: an image registered with --init image boots its own
// /sbin/init as PID 1 (busybox init here) while banger's agent keeps serving
// SSH beside it; stop still powers the guest off through the image's init.
func TestImageInitHandover(t *testing.T) {
	d := sharedDaemon(t)
	src := filepath.Join(filepath.Dir(busyboxRootfs(t)), "root")
	root := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", src, root).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
	for _, c := range []string{"init", "poweroff", "reboot", "halt"} {
		os.Symlink("../bin/busybox", filepath.Join(root, "sbin", c))
	}
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/inittab"), []byte("::sysinit:/bin/echo image-init-ran\n::shutdown:/bin/sync\n"), 0o644)
	img := filepath.Join(t.TempDir(), "bbinit.ext4")
	if out, err := exec.Command("mkfs.ext4", "-q", "-d", root, img, "64M").CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	if _, errOut, code := d.run("image", "register", "--name", "bad-init", "--rootfs", img, "--init", "systemd"); code == 0 || !strings.Contains(errOut, "init") {
		t.Fatalf("--init systemd accepted: %d %s", code, errOut)
	}
	d.must(t, "image", "register", "--name", "bbinit", "--rootfs", img, "--kernel-ref", "debian-12-cloud", "--init", "image")
	defer d.run("image", "delete", "bbinit")
	d.must(t, "vm", "create", "--name", "handover", "--image", "bbinit", "--memory", "256", "--vcpus", "2")
	defer d.run("vm", "delete", "--force", "handover")
	if out := d.must(t, "vm", "exec", "handover", "--", "cat", "/proc/1/comm"); strings.TrimSpace(out) != "init" {
		t.Fatalf("PID 1 is %q, want the image's init", out)
	}
	// The image's init does not start CPUs: banger's did, before handing over.
	if out := d.must(t, "vm", "exec", "handover", "--", "grep", "-c", "^processor", "/proc/cpuinfo"); strings.TrimSpace(out) != "2" {
		t.Fatalf("%s vCPUs online under the image's init, want 2", strings.TrimSpace(out))
	}
	logPath := strings.TrimSpace(d.must(t, "vm", "logs", "handover"))
	if data, _ := os.ReadFile(logPath); !strings.Contains(string(data), "image-init-ran") {
		t.Fatalf("the image's inittab did not run:\n%s", data)
	}
	var h struct {
		Healthy bool `json:"healthy"`
	}
	d.mustJSON(t, &h, "vm", "health", "handover")
	if !h.Healthy {
		t.Fatal("agent beside the image's init is not healthy")
	}
	d.must(t, "vm", "stop", "handover")
	var vm struct {
		State      string `json:"state"`
		StopReason string `json:"stop_reason"`
	}
	d.mustJSON(t, &vm, "vm", "show", "handover")
	if vm.State != "stopped" || strings.Contains(vm.StopReason, "killed") {
		t.Fatalf("stop under the image's init: %+v", vm)
	}
}
