package initsys

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mkext4 makes an ext4 file of size bytes with the host's mkfs.ext4 (test
// fixture only: banger's host side never parses a guest filesystem).
func mkext4(t *testing.T, size string, extra ...string) string {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	p := filepath.Join(t.TempDir(), "fs.ext4")
	args := append([]string{"-q", "-F"}, extra...)
	args = append(args, p, size)
	if out, err := exec.Command("mkfs.ext4", args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	return p
}

func TestParseSuperblock(t *testing.T) {
	p := mkext4(t, "64M", "-b", "4096")
	g, err := readGeometry(p)
	if err != nil {
		t.Fatal(err)
	}
	if g.BlockSize != 4096 || g.Blocks != 64<<20/4096 {
		t.Fatalf("geometry %+v, want 16384 blocks of 4096", g)
	}
	p1k := mkext4(t, "8M", "-b", "1024", "-O", "^64bit")
	g, err = readGeometry(p1k)
	if err != nil {
		t.Fatal(err)
	}
	if g.BlockSize != 1024 || g.Blocks != 8<<10 || g.Is64Bit {
		t.Fatalf("geometry %+v, want 8192 blocks of 1024, not 64bit", g)
	}
	if _, err := parseSuperblock(make([]byte, sbSize)); err == nil || !strings.Contains(err.Error(), "not an ext4") {
		t.Fatalf("zero superblock: %v", err)
	}
}

func TestGrowTarget(t *testing.T) {
	g := ext4Geometry{Blocks: 1000, BlockSize: 4096, Is64Bit: true}
	for _, c := range []struct {
		dev  uint64
		want uint64
	}{
		{1000 * 4096, 0},      // already fills the device
		{1000*4096 + 4095, 0}, // less than one more block
		{999 * 4096, 0},       // never shrinks
		{2000 * 4096, 2000},
		{2000*4096 + 100, 2000},
	} {
		if got := growTarget(g, c.dev); got != c.want {
			t.Errorf("device %d: target %d, want %d", c.dev, got, c.want)
		}
	}
	small := ext4Geometry{Blocks: 1000, BlockSize: 1024}
	if got := growTarget(small, 1<<43); got != 1<<32-1 {
		t.Errorf("non-64bit target %d, want 2^32-1", got)
	}
}

// TestGrowMounted grows a loop-mounted ext4 online with the ioctl the guest
// uses, after extending its file as the host does.
func TestGrowMounted(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root (loop device, mount)")
	}
	if !hasCapSysResource(t) {
		t.Skip("needs CAP_SYS_RESOURCE (online resize); this host's root lacks it")
	}
	p := mkext4(t, "64M")
	g, err := readGeometry(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 256<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", p).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	mnt := t.TempDir()
	if err := unix.Mount(loop, mnt, "ext4", 0, vmDiskOptions); err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(mnt, "before"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	blocks, err := growMounted(loop, mnt, g)
	if err != nil {
		t.Fatal(err)
	}
	if blocks != 256<<20/g.BlockSize {
		t.Fatalf("grown to %d blocks, want %d", blocks, 256<<20/g.BlockSize)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if total := st.Blocks * uint64(st.Bsize); total < 200<<20 {
		t.Fatalf("filesystem is %d bytes after growing, want about 256 MiB", total)
	}
	if data, err := os.ReadFile(filepath.Join(mnt, "before")); err != nil || string(data) != "kept" {
		t.Fatalf("file written before growing: %q, %v", data, err)
	}
	// A second call finds nothing to do.
	g2, err := readGeometry(loop)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := growMounted(loop, mnt, g2); err != nil || n != 0 {
		t.Fatalf("second grow: %d, %v", n, err)
	}
}

// hasCapSysResource reports whether this process has CAP_SYS_RESOURCE,
// which EXT4_IOC_RESIZE_FS requires (a guest's init always has it).
func hasCapSysResource(t *testing.T) bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	return false
}
