package qemu

import (
	"log/slog"
	"os/exec"
	"slices"
	"testing"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
)

// UseKVM changes what later starts run under; refusing KVM where
// /dev/kvm does not work leaves the backend as it was.
func TestUseKVMSwitchesLaterStarts(t *testing.T) {
	b, err := New(Options{ForceTCG: true, Binary: "sh", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	spec := vmm.Spec{RunDir: t.TempDir(), Kernel: "/k", VCPUs: 1, MemoryMiB: 128}
	if b.Name() != NameTCG || !slices.Contains(b.command(spec).Build(), "tcg,thread=multi") {
		t.Fatalf("ForceTCG backend: name %s, argv %v", b.Name(), b.command(spec).Build())
	}
	err = b.UseKVM(true)
	if kvmErr := vmmproc.CheckKVM(vmmproc.KVMDevice); kvmErr != nil {
		if err == nil || b.Name() != NameTCG {
			t.Fatalf("UseKVM(true) without usable kvm (%v): err %v, name %s; want an error and tcg", kvmErr, err, b.Name())
		}
		return
	}
	if err != nil {
		t.Fatalf("UseKVM(true): %v", err)
	}
	argv := b.command(spec).Build()
	if b.Name() != NameKVM || !slices.Contains(argv, "kvm") || !slices.Contains(argv, "host") {
		t.Fatalf("after UseKVM(true): name %s, argv %v", b.Name(), argv)
	}
	if err := b.UseKVM(false); err != nil || b.Name() != NameTCG {
		t.Fatalf("UseKVM(false): %v, name %s", err, b.Name())
	}
}

// A snapshot's fingerprint names the accelerator its VM's QEMU really runs
// under, not the one the backend would start a new VM with.
func TestFingerprintReadsTheRunningAccelerator(t *testing.T) {
	bin, err := exec.LookPath(DefaultBinary)
	if err != nil {
		t.Skipf("no %s: %v", DefaultBinary, err)
	}
	b, err := New(Options{ForceTCG: true, Binary: bin, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	running := t.TempDir()
	fakeQEMU(t, running, "-accel", "kvm")
	fp, err := b.Fingerprint(vmm.Spec{RunDir: running, VCPUs: 1, MemoryMiB: 128})
	if err != nil {
		t.Fatal(err)
	}
	if fp["accelerator"] != NameKVM || fp["cpu_model"] != "host" {
		t.Errorf("running kvm qemu under a tcg backend: accelerator %q, cpu %q; want %s, host", fp["accelerator"], fp["cpu_model"], NameKVM)
	}
	fp, err = b.Fingerprint(vmm.Spec{RunDir: t.TempDir(), VCPUs: 1, MemoryMiB: 128})
	if err != nil {
		t.Fatal(err)
	}
	if fp["accelerator"] != NameTCG || fp["cpu_model"] != "max" {
		t.Errorf("no running qemu: accelerator %q, cpu %q; want the backend's %s, max", fp["accelerator"], fp["cpu_model"], NameTCG)
	}
}
