package image

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"banger/internal/api"
	"banger/internal/mountinfo"

	"golang.org/x/sys/unix"
)

// mkfs makes an ext4 file of exactly size bytes from the directory dir.
func mkfs(ctx context.Context, dir, out string, size, inodes int64) error {
	// Managed images are the daemon's alone (0600): not readable by others.
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create rootfs file: %w", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size rootfs file: %w", err)
	}
	// The file is new and sparse, so its unwritten blocks already read as
	// zeros: the journal need not be written out (it would take 64 MiB of
	// real blocks for a 4 GiB image).
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-d", dir, "-F", "-E", "root_owner=0:0,lazy_journal_init=1",
		"-L", "banger-rootfs", "-N", strconv.FormatInt(inodes, 10), out)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "No space left on device") {
			return fmt.Errorf("mkfs.ext4: the host disk is full: %s", lastLine(msg))
		}
		if strings.Contains(msg, "Could not allocate block") || strings.Contains(msg, "Could not allocate inode") {
			return api.Errorf(api.ErrInvalid, "mkfs.ext4: content does not fit in %s: %s", humanSize(size), lastLine(msg))
		}
		return fmt.Errorf("mkfs.ext4: %w: %s", err, lastLine(msg))
	}
	return nil
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// inodeOf returns the inode number and link count of fi.
func inodeOf(fi fs.FileInfo) (uint64, uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Ino, uint64(st.Nlink), true
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	ms, err := mountinfo.Read()
	if err != nil {
		return err
	}
	var mounts []string
	for _, m := range ms {
		if m.Target == dir || strings.HasPrefix(m.Target, dir+"/") {
			mounts = append(mounts, m.Target)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	return nil
}
