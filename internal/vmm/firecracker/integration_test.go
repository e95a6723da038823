package firecracker

// TestFirecrackerBoot boots a real kernel under the real firecracker. It
// needs a working /dev/kvm, firecracker in PATH, root (for the tap device),
// a vmlinux in BANGER_TEST_FC_KERNEL (the microvm-6.1 catalog kernel) and
// BANGER_TEST_FIRECRACKER=1. The guest has no root file system: its kernel
// boots and panics, which is all the test needs.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
)

func TestFirecrackerBoot(t *testing.T) {
	const reason = "needs KVM and firecracker: set BANGER_TEST_FIRECRACKER=1 on a KVM host with firecracker in PATH"
	if os.Getenv("BANGER_TEST_FIRECRACKER") != "1" {
		t.Skip(reason)
	}
	if err := vmmproc.CheckKVM(vmmproc.KVMDevice); err != nil {
		t.Skipf("%s (%v)", reason, err)
	}
	if _, err := exec.LookPath(DefaultBinary); err != nil {
		t.Skipf("%s (%v)", reason, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a tap device")
	}
	kernel := os.Getenv("BANGER_TEST_FC_KERNEL")
	if kernel == "" {
		t.Fatal("BANGER_TEST_FC_KERNEL must name a vmlinux (e.g. the pulled microvm-6.1 kernel)")
	}
	b, err := New(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tap := fmt.Sprintf("bgfct%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "tuntap", "add", "dev", tap, "mode", "tap").CombinedOutput(); err != nil {
		t.Fatalf("create tap: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", tap).Run() })

	dir := t.TempDir()
	disk := filepath.Join(dir, "work.ext4")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := vmm.Spec{RunDir: filepath.Join(dir, "run"),
		Kernel: kernel, Cmdline: "console=ttyS0 reboot=k panic=-1", VCPUs: 1, MemoryMiB: 256,
		Disks:     []vmm.Disk{{Path: disk, Serial: "banger-work"}},
		Net:       &vmm.Net{Tap: tap, MAC: "02:00:0a:00:00:09"},
		SerialLog: filepath.Join(dir, "serial.log")}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := b.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Quit(context.Background(), spec.RunDir)
	if got, err := b.Adopt(ctx, spec.RunDir); err != nil || got.PID != p.PID {
		t.Errorf("Adopt = %+v, %v", got, err)
	}
	// The kernel prints its banner on the serial console, then panics
	// without a root file system and reboots, which ends firecracker.
	for {
		serial, _ := os.ReadFile(spec.SerialLog)
		if strings.Contains(string(serial), "Linux version") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no kernel banner on the serial console: %q", serial)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := b.Quit(ctx, spec.RunDir); err != nil {
		t.Errorf("Quit: %v", err)
	}
	if !vmmproc.Exited(p.PID) {
		t.Errorf("pid %d still running after Quit", p.PID)
	}
}
