// Package initramfs builds the newc cpio archives banger hands to a guest
// kernel as its initrd: one holding the kernel modules a VM needs to reach its
// disks (for kernels whose drivers are modules), and one holding banger's
// guest agent as /init. The kernel accepts concatenated archives, so the VM
// code passes both, modules first.
package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/cavaliergopher/cpio"
)

// archive wraps a cpio writer and remembers the directories already written,
// so each parent directory appears once, before its children.
type archive struct {
	rdev *rdevWriter
	w    *cpio.Writer
	dirs map[string]bool
}

func newArchive(w io.Writer) *archive {
	rw := &rdevWriter{w: w}
	return &archive{rdev: rw, w: cpio.NewWriter(rw), dirs: map[string]bool{}}
}

// dir writes name and any missing parents as directories (mode 0755).
func (a *archive) dir(name string) error {
	name = strings.Trim(path.Clean(name), "/")
	if name == "" || name == "." || a.dirs[name] {
		return nil
	}
	if err := a.dir(path.Dir(name)); err != nil {
		return err
	}
	a.dirs[name] = true
	return a.w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeDir | 0o755, Links: 2})
}

// file writes data as the regular file name with the given permissions.
func (a *archive) file(name string, perm cpio.FileMode, data []byte) error {
	return a.stream(name, perm, int64(len(data)), bytes.NewReader(data))
}

// stream writes size bytes from r as the regular file name.
func (a *archive) stream(name string, perm cpio.FileMode, size int64, r io.Reader) error {
	name = strings.Trim(path.Clean(name), "/")
	if err := a.dir(path.Dir(name)); err != nil {
		return err
	}
	if err := a.w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeReg | perm, Size: size, Links: 1}); err != nil {
		return fmt.Errorf("write %s header: %w", name, err)
	}
	n, err := io.Copy(a.w, r)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("write %s: got %d bytes, want %d", name, n, size)
	}
	return nil
}

// hostFile copies the host file src into the archive as name, keeping its
// permission bits.
func (a *archive) hostFile(name, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	return a.stream(name, cpio.FileMode(fi.Mode().Perm()), fi.Size(), f)
}

// charDev writes a character device node.
func (a *archive) charDev(name string, perm cpio.FileMode, major, minor uint32) error {
	name = strings.Trim(path.Clean(name), "/")
	if err := a.dir(path.Dir(name)); err != nil {
		return err
	}
	a.rdev.set(major, minor)
	return a.w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeChar | perm, Links: 1})
}

func (a *archive) close() error { return a.w.Close() }

// rdevWriter fills in the rdevmajor/rdevminor fields of the next newc header.
// github.com/cavaliergopher/cpio v1.0.1 has no field for a device node's
// numbers and always writes zeros there; it writes each 110-byte header in a
// single Write call, so the numbers are patched into that call's bytes.
type rdevWriter struct {
	w       io.Writer
	pending bool
	major   uint32
	minor   uint32
}

func (r *rdevWriter) set(major, minor uint32) {
	r.pending, r.major, r.minor = true, major, minor
}

// newc header layout: magic(6) then 13 eight-digit hex fields; rdevmajor and
// rdevminor are fields 10 and 11.
const (
	newcHeaderLen = 110
	rdevMajorOff  = 6 + 9*8
	rdevMinorOff  = 6 + 10*8
)

func (r *rdevWriter) Write(p []byte) (int, error) {
	if r.pending && len(p) == newcHeaderLen && bytes.HasPrefix(p, []byte("07070")) {
		r.pending = false
		b := append([]byte(nil), p...)
		copy(b[rdevMajorOff:], fmt.Sprintf("%08X", r.major))
		copy(b[rdevMinorOff:], fmt.Sprintf("%08X", r.minor))
		return r.w.Write(b)
	}
	return r.w.Write(p)
}
