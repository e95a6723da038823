// Package tarstream is the guest agent's tar code: Extract unpacks a
// stream from the host under a folder, confined to it; Write archives a
// folder for the host. The host is trusted here (the guest is not), but the
// extraction is confined all the same.
package tarstream

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/agent/proto"
	"banger/internal/tarname"
)

// Summary is what Extract wrote.
type Summary = proto.Extracted

// Extract unpacks the tar stream r under dir. Every path stays inside dir:
// names are checked and all file operations go through an os.Root, so a
// symlink in the archive can never redirect a later entry outside dir.
// Modes (permission, setuid/setgid/sticky) and mtimes are kept; ownership is
// not (files belong to the extracting user).
func Extract(r io.Reader, dir string) (Summary, error) {
	var sum Summary
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sum, fmt.Errorf("extract: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return sum, fmt.Errorf("extract: %w", err)
	}
	defer root.Close()

	type dirTime struct {
		name  string
		mtime time.Time
	}
	var dirs []dirTime
	// made holds the directories known to exist, so that the parents of
	// most entries cost no system call (each is slow in an emulated guest).
	// An entry that replaces a directory empties it.
	made := map[string]bool{}
	tr := tar.NewReader(bufio.NewReaderSize(r, 1<<20))
	buf := make([]byte, 256<<10)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, fmt.Errorf("extract: read archive: %w", err)
		}
		name, err := tarname.Clean(hdr.Name)
		if err != nil {
			return sum, fmt.Errorf("extract: %w", err)
		}
		if name == "." {
			if hdr.Typeflag == tar.TypeDir {
				dirs = append(dirs, dirTime{".", hdr.ModTime})
			}
			continue
		}
		if dir := path.Dir(name); dir != "." && !made[dir] {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return sum, fmt.Errorf("extract: %s: %w", name, err)
			}
			made[dir] = true
		}
		if hdr.Typeflag != tar.TypeDir && made[name] {
			clear(made)
		}
		mode := fs.FileMode(hdr.Mode).Perm() | modeBits(hdr.Mode)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := makeDir(root, name, mode); err != nil {
				return sum, fmt.Errorf("extract: %s: %w", name, err)
			}
			dirs = append(dirs, dirTime{name, hdr.ModTime})
			made[name] = true
			sum.Dirs++
		case tar.TypeReg, tar.TypeRegA:
			n, err := writeFile(root, name, tr, mode, hdr.ModTime, buf)
			if err != nil {
				return sum, fmt.Errorf("extract: %s: %w", name, err)
			}
			sum.Files++
			sum.Bytes += n
		case tar.TypeSymlink:
			if err := clearEntry(root, name); err != nil {
				return sum, fmt.Errorf("extract: %s: %w", name, err)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return sum, fmt.Errorf("extract: %s: %w", name, err)
			}
			sum.Files++
		case tar.TypeLink:
			target, err := tarname.Clean(hdr.Linkname)
			if err != nil {
				return sum, fmt.Errorf("extract: hard link %s: %w", name, err)
			}
			if err := clearEntry(root, name); err != nil {
				return sum, fmt.Errorf("extract: %s: %w", name, err)
			}
			if err := root.Link(target, name); err != nil {
				return sum, fmt.Errorf("extract: %s: %w", name, err)
			}
			sum.Files++
		default:
			sum.Skipped++
		}
	}
	// Directory mtimes last: creating entries inside changes them.
	for _, d := range slices.Backward(dirs) {
		if err := root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return sum, fmt.Errorf("extract: %s: %w", d.name, err)
		}
	}
	sum.DoneUnixNano = stampAfter(root)
	return sum, nil
}

// stampAfter returns a change time (ctime) later than that of every entry
// written so far under root, taken from root itself: it sets root's mode
// to what it is (which sets its ctime to the clock the file system uses)
// until the stamp moves past the first one. 0 when the file system gives
// no such time or it does not move within about 100 ms.
func stampAfter(root *os.Root) int64 {
	d, err := root.Open(".")
	if err != nil {
		return 0
	}
	defer d.Close()
	stamp := func() (int64, bool) {
		fi, err := d.Stat()
		if err != nil || d.Chmod(fi.Mode().Perm()|(fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))) != nil {
			return 0, false
		}
		if fi, err = d.Stat(); err != nil {
			return 0, false
		}
		return changeTime(fi)
	}
	first, ok := stamp()
	for i := 0; ok && i < 100; i++ {
		time.Sleep(time.Millisecond)
		var t int64
		if t, ok = stamp(); ok && t > first {
			return t
		}
	}
	return 0
}

// modeBits converts tar's setuid/setgid/sticky bits to fs.FileMode ones.
func modeBits(m int64) fs.FileMode {
	var mode fs.FileMode
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// makeDir creates name or, when it exists as a directory, sets its mode.
func makeDir(root *os.Root, name string, mode fs.FileMode) error {
	fi, err := root.Lstat(name)
	if err == nil && !fi.IsDir() {
		if err := root.Remove(name); err != nil {
			return err
		}
		err = os.ErrNotExist
	}
	if errors.Is(err, os.ErrNotExist) {
		if err := root.Mkdir(name, 0o700); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return root.Chmod(name, mode)
}

// clearEntry removes whatever is at name so a new entry can replace it (a
// symlink is replaced, never followed).
func clearEntry(root *os.Root, name string) error {
	err := root.RemoveAll(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// writeFile writes one regular file; buf is the copy buffer, reused across files.
func writeFile(root *os.Root, name string, r io.Reader, mode fs.FileMode, mtime time.Time, buf []byte) (int64, error) {
	// Create first; only an existing entry (rare: a re-extraction) is
	// cleared, since RemoveAll is several syscalls even when nothing is there.
	// A plain mode the umask leaves alone is given at creation: no
	// fchmod afterwards (one system call less per file).
	perm, chmod := fs.FileMode(0o600), true
	if m, ok := processUmask(); ok && mode == mode.Perm() && mode&m == 0 {
		perm, chmod = mode, false
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		if err := clearEntry(root, name); err != nil {
			return 0, err
		}
		f, err = root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	}
	if err != nil {
		return 0, err
	}
	// Mode and times go through the open descriptor: no second and third
	// walk of the path (each costs several syscalls, slow in an emulated guest).
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, r, buf)
	if err == nil && chmod {
		err = f.Chmod(mode)
	}
	if err == nil {
		tv := unix.NsecToTimeval(mtime.UnixNano())
		err = unix.Futimes(int(f.Fd()), []unix.Timeval{tv, tv})
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}
