package main

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestSummarizeAndRatios(t *testing.T) {
	s := summarize([]float64{5, 1, 3, 2, 4})
	if s.Median != 3 || s.Min != 1 || s.Max != 5 || s.N != 5 {
		t.Fatalf("summarize: %+v", s)
	}
	if got := summarize([]float64{1, 2, 3, 4}).Median; got != 2.5 {
		t.Fatalf("median of 4: %v", got)
	}
	if summarize(nil) != nil {
		t.Fatal("summarize(nil) should be nil")
	}
	// Ratios pair run i with run i, not medians with medians.
	r := ratios([]float64{2, 9, 4}, []float64{1, 3, 0})
	if !slices.Equal(r, []float64{2, 3}) {
		t.Fatalf("ratios: %v", r)
	}
	if p := pct([]float64{10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100}, 99); p < 90 || p > 100 {
		t.Fatalf("p99: %v", p)
	}
}

func TestBareArgv(t *testing.T) {
	argv := strings.Fields("/usr/bin/qemu-system-x86_64 -M microvm,acpi=on -nodefaults -no-reboot -accel tcg -smp 2 -m 256M " +
		"-kernel /k -initrd /i.cpio -append console=ttyS0 " +
		"-drive if=none,id=d0,file=/root.ext4,readonly=on -device virtio-blk-device,drive=d0,serial=banger-rootfs " +
		"-drive if=none,id=d1,file=/ov.ext4 -device virtio-blk-device,drive=d1,serial=banger-overlay " +
		"-netdev tap,id=n0,ifname=t0 -device virtio-net-device,netdev=n0 -chardev file,id=ser0,path=/s.log -serial chardev:ser0 " +
		"-qmp unix:/q.sock,server=on,wait=off -pidfile /p -daemonize -S -sandbox on,spawn=deny -chroot /r -runas 9:9")
	got := strings.Join(bareArgv(argv, "", true), " ")
	want := "/usr/bin/qemu-system-x86_64 -M microvm,acpi=on -nodefaults -no-reboot -accel tcg -smp 2 -m 256M " +
		"-kernel /k -initrd /i.cpio -append console=ttyS0 " +
		"-drive if=none,id=d0,file=/root.ext4,readonly=on -device virtio-blk-device,drive=d0,serial=banger-rootfs " +
		"-chardev stdio,id=ser0,signal=off -serial chardev:ser0"
	if got != want {
		t.Fatalf("bareArgv:\n got %s\nwant %s", got, want)
	}
	got = strings.Join(bareArgv(argv, "/idle.cpio", false), " ")
	if strings.Contains(got, "-drive") || !strings.Contains(got, "-initrd /idle.cpio") {
		t.Fatalf("bareArgv without disks: %s", got)
	}
	// The portable bundle's loader prefix is kept up to -M.
	loader := append([]string{"/b/lib/qemu-ld.so", "--library-path", "/b/lib", "--argv0", "qemu-system-x86_64", "/b/qemu", "-L", "/b/share"}, argv[1:]...)
	if got := bareArgv(loader, "", true); !slices.Equal(got[:8], loader[:8]) || got[8] != "-M" {
		t.Fatalf("loader prefix: %v", got[:9])
	}
}

func TestNewcArchive(t *testing.T) {
	var c newc
	c.entry("init", 0o100755, []byte("#!/bin/sh\n"), 0, 0)
	data := c.bytes()
	if !bytes.HasPrefix(data, []byte("070701")) || len(data)%4 != 0 || !bytes.Contains(data, []byte("TRAILER!!!")) {
		t.Fatalf("bad newc archive: %q", data)
	}
}

func TestRunFailuresAndNoisyBaseline(t *testing.T) {
	var f runFailures
	if f.note(5) != "" {
		t.Fatal("no failures should give no note")
	}
	f.add(nil)
	f.add(errors.New("guest agent did not answer\nmore"))
	f.add(errors.New("second"))
	if got := f.note(5); got != "2 of 5 runs failed (first: guest agent did not answer)" {
		t.Fatalf("note: %q", got)
	}
	tight := Row{Base: summarize([]float64{2.7, 2.75, 2.9})}
	if noisyBaseline(tight) != "" {
		t.Fatalf("tight baseline flagged: %q", noisyBaseline(tight))
	}
	wide := Row{Base: summarize([]float64{2.59, 3.85, 4.90})}
	if !strings.Contains(noisyBaseline(wide), "not meaningful") {
		t.Fatalf("wide baseline not flagged: %q", noisyBaseline(wide))
	}
	if got := joinNotes("a", "", "b"); got != "a; b" {
		t.Fatalf("joinNotes: %q", got)
	}
}

func TestTreeCPU(t *testing.T) {
	pt, err := parseProcStat("42 (qemu (x) y) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 3 0 1 2 3")
	if err != nil || pt.ppid != 7 || pt.self != 3 || pt.kids != 0.5 {
		t.Fatalf("parseProcStat = %+v, %v; want ppid 7, self 3 s, kids 0.5 s", pt, err)
	}
	procs := map[int]procTimes{
		1:  {ppid: 0, self: 100},
		10: {ppid: 1, self: 1, kids: 2}, // the daemon
		11: {ppid: 10, self: 4},         // its QEMU
		12: {ppid: 11, self: 8},         // a grandchild
		13: {ppid: 1, self: 16},         // someone else's
	}
	if got := sumTree(procs, 10); got != 15 {
		t.Fatalf("sumTree = %v, want 15 (daemon, reaped children, child, grandchild)", got)
	}
	if _, err := treeCPU(os.Getpid()); err != nil {
		t.Fatalf("treeCPU of the test process: %v", err)
	}
}

func TestAccelFromLog(t *testing.T) {
	log := `time=x level=INFO msg="vmm backend" backend=qemu-tcg accel=tcg why="this host is a \"vm\" (pull a kernel)" vmm_user=banger-vmm`
	if got, want := accelFromLog([]byte(log)), `qemu-tcg (tcg: this host is a "vm" (pull a kernel))`; got != want {
		t.Fatalf("accelFromLog = %q, want %q", got, want)
	}
	if got := accelFromLog([]byte(`msg="vmm backend" backend=qemu-kvm accel=kvm vmm_user=x`)); got != "qemu-kvm (kvm)" {
		t.Fatalf("accelFromLog without why = %q", got)
	}
	two := log + "\n" + `time=y level=INFO msg="vmm backend" backend=qemu-kvm accel=kvm why="kvm probe: a test guest booted under kvm" decided_again="a kernel is stored"`
	if got, want := accelFromLog([]byte(two)), "qemu-kvm (kvm: kvm probe: a test guest booted under kvm)"; got != want {
		t.Fatalf("accelFromLog after a second decision = %q, want %q", got, want)
	}
	if got := accelFromLog([]byte("nothing")); got != "unknown" {
		t.Fatalf("accelFromLog of no line = %q", got)
	}
}
