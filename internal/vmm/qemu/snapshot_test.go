package qemu

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
	"banger/internal/vmm/vmmtest"
)

// TestQEMUSnapshotRestore snapshots a confined running VM and restores a
// clone from it: the files are private, the parent stays stopped until
// resumed, the clone loads the state and runs on its own.
func TestQEMUSnapshotRestore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (confined qemu)")
	}
	u, err := vmmproc.EnsureSysUser(vmmproc.DefaultVMMUser)
	if err != nil {
		t.Fatal(err)
	}
	b := testBackend(t, Options{RunAs: &u, MemDir: filepath.Join("/dev/shm", "banger-test-"+filepath.Base(t.TempDir()))})
	t.Cleanup(func() { os.RemoveAll(b.memDir) })
	kernel := vmmtest.Kernel(t)
	spec := testSpec(t, kernel)
	start(t, b, spec)
	waitForLog(t, spec.SerialLog, "Linux version")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if ents, _ := os.ReadDir(b.memDir); len(ents) != 0 {
		t.Errorf("a running vm's ram file is left linked in %s: %v", b.memDir, ents)
	}
	snap := t.TempDir()
	if err := b.Snapshot(ctx, spec.RunDir, snap); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	for _, f := range []string{vmm.SnapshotState, vmm.SnapshotRAM} {
		fi, err := os.Stat(filepath.Join(snap, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("snapshot file %s: %v, %v; want mode 0600", f, fi, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(snap, vmm.SnapshotRAM)); fi.Size() != int64(spec.MemoryMiB)<<20 {
		t.Errorf("ram file is %d bytes, want %d", fi.Size(), spec.MemoryMiB<<20)
	}
	if n := allocatedBytes(t, filepath.Join(snap, vmm.SnapshotRAM)); n < 4<<20 {
		t.Errorf("ram copy holds only %d bytes of data: the guest's memory is not in it", n)
	}
	if s, err := status(ctx, spec.RunDir); err != nil || s.Running {
		t.Fatalf("parent after Snapshot: %+v, %v; want stopped", s, err)
	}

	clone := testSpec(t, kernel)

	fpParent, err := b.Fingerprint(spec)
	if err != nil {
		t.Fatal(err)
	}
	fpClone, _ := b.Fingerprint(clone)
	for k, v := range fpParent {
		if fpClone[k] != v {
			t.Errorf("fingerprint %s differs between same-layout vms: %q vs %q", k, v, fpClone[k])
		}
	}
	bigger := clone
	bigger.MemoryMiB *= 2
	if fp, _ := b.Fingerprint(bigger); fp["memory_mib"] == fpParent["memory_mib"] {
		t.Errorf("fingerprint ignores memory: %v", fp)
	}

	p, err := b.Restore(ctx, clone, snap)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { b.Quit(context.Background(), clone.RunDir) })
	if s, err := status(ctx, clone.RunDir); err != nil || s.Running || s.Status == "inmigrate" {
		t.Fatalf("clone after Restore: %+v, %v; want loaded and stopped", s, err)
	}
	if err := b.Resume(ctx, clone.RunDir); err != nil {
		t.Fatalf("Resume clone: %v", err)
	}
	if s, err := status(ctx, clone.RunDir); err != nil || !s.Running {
		t.Fatalf("clone after Resume: %+v, %v", s, err)
	}
	if err := b.Resume(ctx, spec.RunDir); err != nil {
		t.Fatalf("Resume parent: %v", err)
	}
	if got, err := b.Adopt(ctx, clone.RunDir); err != nil || got.PID != p.PID {
		t.Fatalf("Adopt clone = %+v, %v", got, err)
	}
}

func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}
