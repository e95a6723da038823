package initsys

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The VM's own disks give the space of deleted files back to the host file
// behind them: vmDiskOptions mounts them with online discard, which a loop
// device (as QEMU's discard=unmap) turns into holes punched in the file.
func TestVMDisksGiveFreedSpaceBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a loop device and a mount)")
	}
	p := mkext4(t, "128M", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1")
	out, err := exec.Command("losetup", "--find", "--show", p).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	if max, _ := os.ReadFile("/sys/block/" + filepath.Base(loop) + "/queue/discard_max_bytes"); strings.TrimSpace(string(max)) == "0" {
		t.Skipf("%s has no discard: the filesystem of %s cannot punch holes", loop, p)
	}
	mnt := t.TempDir()
	if err := unix.Mount(loop, mnt, "ext4", 0, vmDiskOptions); err != nil {
		t.Fatalf("mount with %q: %v", vmDiskOptions, err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })

	const size = 32 << 20
	big := filepath.Join(mnt, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte{0xab}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	written := allocatedBytes(t, p)
	if written < size {
		t.Fatalf("the host file holds %d bytes after writing %d", written, size)
	}
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	var now int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if now = allocatedBytes(t, p); written-now >= size*9/10 {
			return
		}
		unix.Sync()
	}
	t.Fatalf("the host file holds %d bytes after the file was deleted, %d before: the space was not given back", now, written)
}

// allocatedBytes is what path occupies on its filesystem.
func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}
