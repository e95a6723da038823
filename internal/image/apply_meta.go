package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// setMeta applies ownership, mode, xattrs and times from hdr to full.
// Ownership goes first: chown clears setuid/setgid bits.
func (a *applier) setMeta(full string, hdr *tar.Header) error {
	if err := unix.Lchown(full, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("lchown: %w", err)
	}
	symlink := hdr.Typeflag == tar.TypeSymlink
	if !symlink {
		if err := unix.Chmod(full, uint32(hdr.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if err := unix.Lsetxattr(full, name, []byte(v), 0); err != nil && !xattrUnsupported(err) {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		a.dirTimes[full] = hdr.ModTime
		return nil
	}
	return setTimes(full, hdr.AccessTime, hdr.ModTime)
}

// xattrUnsupported reports errors meaning the host refuses this attribute.
func xattrUnsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// setTimes sets atime and mtime without following a symlink. A zero atime
// takes the mtime.
func setTimes(full string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, full, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// setDirTimes applies directory mtimes, deepest first, once every layer is in.
func (a *applier) setDirTimes() error {
	dirs := make([]string, 0, len(a.dirTimes))
	for d := range a.dirTimes {
		dirs = append(dirs, d)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		err := setTimes(d, time.Time{}, a.dirTimes[d])
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// markWritten records that the current layer wrote full.
func (a *applier) markWritten(full string) {
	a.written[full] = true
}

// whiteout removes name from the directory dir (as earlier layers left it).
func (a *applier) whiteout(dir, name string) error {
	if name == "" || name == "." {
		return fmt.Errorf("bad whiteout")
	}
	parent, err := a.resolveDir(dir, false)
	if err != nil || parent == "" {
		return err
	}
	return replace(filepath.Join(parent, name))
}

// opaque empties the directory dir of everything earlier layers put there,
// keeping what the current layer wrote.
func (a *applier) opaque(dir string) error {
	parent, err := a.resolveDir(dir, true)
	if err != nil {
		return err
	}
	a.markWritten(parent)
	return a.prune(parent)
}

// prune removes the entries of dir the current layer did not write, and
// recurses into the directories it did.
func (a *applier) prune(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if !a.written[p] {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			continue
		}
		if e.IsDir() {
			if err := a.prune(p); err != nil {
				return err
			}
		}
	}
	return nil
}
