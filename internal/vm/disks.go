package vm

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"banger/internal/bootcfg"
)

// mkfsExt4 makes a sparse ext4 file of size bytes. Lazy inode-table and
// journal init keep the bytes written small (a few MiB, whatever the size),
// so creating a VM costs the same for any disk size.
func mkfsExt4(ctx context.Context, path, label string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("size %s: %w", path, err)
	}
	f.Close()
	return run(ctx, "mkfs.ext4", "-q", "-F", "-L", label, "-m", "0",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0", path)
}

// seedWorkDisk copies the image's work seed (an ext4 file) sparsely and
// extends the file to size; the guest grows the filesystem at boot.
func seedWorkDisk(ctx context.Context, seed, path string, size int64) error {
	if err := run(ctx, "cp", "--sparse=always", "--reflink=auto", seed, path); err != nil {
		return err
	}
	os.Chmod(path, 0o600)
	return extendFile(path, size)
}

// extendFile makes a disk file size bytes long (never shorter), sparsely.
// Only the file changes: the guest's init grows the ext4 filesystem inside
// to fill it, online, at its next boot (EXT4_IOC_RESIZE_FS). The host never
// runs fsck or resize tools on a filesystem the guest wrote.
func extendFile(path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if size <= fi.Size() {
		return nil
	}
	if err := os.Truncate(path, size); err != nil {
		return fmt.Errorf("extend %s: %w", path, err)
	}
	return nil
}

// writeConfigDisk writes the boot configuration disk atomically.
func writeConfigDisk(path string, c *bootcfg.Config) error {
	data, err := bootcfg.Encode(c)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// allocated returns the bytes a file really occupies on disk.
func allocated(path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// run runs a host tool and quotes its output on failure.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// tail returns the last n lines of a file (for error messages).
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 64<<10 {
		f.Seek(-64<<10, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
