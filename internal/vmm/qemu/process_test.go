package qemu

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/vmm"
)

// The command line Start builds is the one match recognises, and only for
// its own run directory.
func TestMatchRecognisesBuiltCommand(t *testing.T) {
	b := &Backend{binary: "/usr/bin/qemu-system-x86_64", diskCache: "writeback"}
	spec := vmm.Spec{RunDir: "/run/banger/vm1", Kernel: "/k/vmlinuz", VCPUs: 1, MemoryMiB: 256}
	argv := b.command(spec).Build()
	if !match("/run/banger/vm1").Of(argv) {
		t.Errorf("match(vm1) rejects its own qemu: %q", argv)
	}
	if !match("/run/banger/vm1/").Of(argv) {
		t.Errorf("match(vm1/) rejects its own qemu: %q", argv)
	}
	if match("/run/banger/vm2").Of(argv) {
		t.Errorf("match(vm2) accepts the qemu of vm1: %q", argv)
	}
	other := append([]string{"/usr/bin/sleep"}, argv[1:]...)
	if match("/run/banger/vm1").Of(other) {
		t.Errorf("match accepts a program not named qemu: %q", other)
	}
}

func TestBackendName(t *testing.T) {
	if got := backendName([]string{"qemu", "-accel", "kvm", "-cpu", "host"}); got != NameKVM {
		t.Errorf("kvm argv: %s", got)
	}
	if got := backendName([]string{"qemu", "-accel", "tcg,thread=multi"}); got != NameTCG {
		t.Errorf("tcg argv: %s", got)
	}
}

func writePID(t *testing.T, dir string, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, PIDFile), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// In a run dir without a live qemu of its own, Adopt and Signal say
// ErrNotRunning, Wait returns at once and Quit removes the stale pidfile
// without touching the process it names. (The reasons Lookup gives are
// tested in vmmproc.)
func TestNotRunning(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pidfiles := map[string]string{
		"no pidfile":             "",
		"garbage pidfile":        "hello\n",
		"exited pid":             strconv.Itoa(dead.Process.Pid) + "\n",
		"pid of another program": strconv.Itoa(os.Getpid()) + "\n",
	}
	for name, pidfile := range pidfiles {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if pidfile != "" {
				writePID(t, dir, pidfile)
			}
			b := &Backend{}
			if _, err := b.Adopt(context.Background(), dir); !errors.Is(err, vmm.ErrNotRunning) {
				t.Errorf("Adopt error = %v, want ErrNotRunning", err)
			}
			if err := b.Signal(dir, 0); !errors.Is(err, vmm.ErrNotRunning) {
				t.Errorf("Signal error = %v, want ErrNotRunning", err)
			}
			if err := b.Wait(context.Background(), dir); err != nil {
				t.Errorf("Wait on a stopped vm: %v", err)
			}
			if err := b.Quit(context.Background(), dir); err != nil {
				t.Errorf("Quit on a stopped vm: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, PIDFile)); !os.IsNotExist(err) {
				t.Errorf("Quit left the stale pidfile: %v", err)
			}
		})
	}
}

func TestCheckSpec(t *testing.T) {
	good := vmm.Spec{RunDir: "/run/banger/vm1", Kernel: "/k/vmlinuz", VCPUs: 1, MemoryMiB: 256,
		SerialLog: "/run/banger/vm1/serial.log",
		Disks:     []vmm.Disk{{Path: "/img/root.ext4", Serial: "banger-rootfs", ReadOnly: true}},
		Net:       &vmm.Net{Tap: "bgtap0", MAC: "02:00:0a:1e:00:02"}}
	if err := vmm.CheckSpec(good, caps); err != nil {
		t.Fatalf("good spec rejected: %v", err)
	}
	tests := []struct {
		name   string
		edit   func(s *vmm.Spec)
		reason string
	}{
		{"no run dir", func(s *vmm.Spec) { s.RunDir = "" }, "run dir path is empty"},
		{"relative run dir", func(s *vmm.Spec) { s.RunDir = "vm1" }, "not absolute"},
		{"long run dir", func(s *vmm.Spec) { s.RunDir = "/" + strings.Repeat("x", 100) }, "too long"},
		{"no kernel", func(s *vmm.Spec) { s.Kernel = "" }, "kernel path is empty"},
		{"relative initrd", func(s *vmm.Spec) { s.Initrd = "initrd.img" }, "initrd path"},
		{"no cpus", func(s *vmm.Spec) { s.VCPUs = 0 }, "vcpus"},
		{"no memory", func(s *vmm.Spec) { s.MemoryMiB = -1 }, "memory"},
		{"disk without path", func(s *vmm.Spec) { s.Disks = []vmm.Disk{{Serial: "x"}} }, "disk 0 path is empty"},
		{"long serial", func(s *vmm.Spec) { s.Disks[0].Serial = "banger-a-very-long-serial" }, "longer than 20"},
		{"bad mac", func(s *vmm.Spec) { s.Net = &vmm.Net{Tap: "t", MAC: "02:00"} }, "bad mac"},
		{"long tap", func(s *vmm.Spec) { s.Net = &vmm.Net{Tap: "tap-name-too-long"} }, "tap device"},
		{"bad port", func(s *vmm.Spec) { s.Net = &vmm.Net{SSHHostPort: 70000} }, "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			s.Disks = append([]vmm.Disk(nil), good.Disks...)
			tt.edit(&s)
			err := vmm.CheckSpec(s, caps)
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("checkSpec error = %v, want ErrInvalid saying %q", err, tt.reason)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}
