package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/api"
	"banger/internal/oci"
	"banger/internal/tarname"
)

// ApplyLayers unpacks layers, oldest first, into the directory root with our
// own tar handling: whiteouts (.wh.NAME) and opaque directories
// (.wh..wh..opq), hard links (also to files of earlier layers), symlinks,
// device nodes and fifos, ownership, modes (setuid, setgid, sticky),
// modification times and extended attributes (where the host allows).
// Entries that would leave root (absolute names, "..", or a parent symlink
// whose target climbs above root) are refused with an error; absolute
// symlink targets in parent paths are resolved inside root, as the guest
// will see them, so nothing is ever written outside root.
//
// Regular files are counted by their real (expanded) size, sparse members
// included, and the layers together may hold at most DefaultMaxImageSize;
// files are written sparse (all-zero blocks become holes).
func ApplyLayers(ctx context.Context, layers []oci.Layer, root string) error {
	return applyLayers(ctx, layers, root, sizeLimit{max: DefaultMaxImageSize}, nil)
}

// sizeLimit bounds the expanded size of the layers' files.
type sizeLimit struct {
	max int64
	// freeOn, when set, says the limit is the free space of that directory.
	freeOn string
}

func (l sizeLimit) err() error {
	if l.freeOn != "" {
		return api.Errorf(api.ErrInvalid, "the host disk is full: the image expands to more than the %s free on %s (sparse files count at their real size)",
			oci.FormatSize(l.max), l.freeOn)
	}
	return api.Errorf(api.ErrInvalid, "the image expands to more than %s, the limit (bangerd --max-image-size; sparse files count at their real size)",
		oci.FormatSize(l.max))
}

// applyLayers is ApplyLayers with a limit, calling before(i) ahead of layer i.
func applyLayers(ctx context.Context, layers []oci.Layer, root string, limit sizeLimit, before func(i int)) error {
	a := &applier{root: root, dirTimes: map[string]time.Time{}, limit: limit}
	for i, l := range layers {
		if before != nil {
			before(i)
		}
		if err := a.applyLayer(ctx, l); err != nil {
			return fmt.Errorf("apply layer %s: %w", l.Digest, err)
		}
	}
	return a.setDirTimes()
}

// applier holds the state of one ApplyLayers call.
type applier struct {
	root string
	// dirTimes are applied at the end: writing into a directory changes
	// its mtime.
	dirTimes map[string]time.Time
	// written holds the root-relative real paths the current layer created,
	// which an opaque marker of the same layer must keep.
	written map[string]bool
	limit   sizeLimit
	// expanded is the real size of the files written so far.
	expanded int64
}

func (a *applier) applyLayer(ctx context.Context, l oci.Layer) error {
	rc, err := l.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	a.written = map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := a.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
}

// entry applies one tar entry.
func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader:
		return nil
	}
	rel, err := tarname.Clean(hdr.Name)
	if err != nil {
		return err
	}
	dir, base := path.Split(rel)
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the root can only be a directory")
		}
		dir, base = ".", ""
	}
	if base == ".wh..wh..opq" {
		return a.opaque(dir)
	}
	if strings.HasPrefix(base, ".wh.") {
		return a.whiteout(dir, strings.TrimPrefix(base, ".wh."))
	}
	parent, err := a.resolveDir(dir, true)
	if err != nil {
		return err
	}
	full := parent
	if base != "" {
		full = filepath.Join(parent, base)
	}
	a.markWritten(full)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := a.makeDir(full); err != nil {
			return err
		}
	case tar.TypeReg, tar.TypeRegA:
		a.expanded += hdr.Size
		if a.limit.max > 0 && a.expanded > a.limit.max {
			return a.limit.err()
		}
		if err := a.writeFile(full, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := replace(full); err != nil {
			return err
		}
		if err := os.Symlink(hdr.Linkname, full); err != nil {
			return err
		}
	case tar.TypeLink:
		return a.hardLink(full, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := a.mknod(full, hdr); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	return a.setMeta(full, hdr)
}

// makeDir makes a directory, keeping one that exists (layers merge).
func (a *applier) makeDir(full string) error {
	fi, err := os.Lstat(full)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err := replace(full); err != nil {
		return err
	}
	return os.Mkdir(full, 0o700)
}

// writeFile writes a regular file, replacing whatever was there.
func (a *applier) writeFile(full string, r io.Reader) error {
	if err := replace(full); err != nil {
		return err
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = oci.WriteSparse(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// hardLink links full to the earlier entry named linkname.
func (a *applier) hardLink(full, linkname string) error {
	rel, err := tarname.Clean(linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	dir, base := path.Split(rel)
	parent, err := a.resolveDir(dir, false)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if parent == "" || base == "" {
		return fmt.Errorf("hard link target %q does not exist", linkname)
	}
	target := filepath.Join(parent, base)
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hard link target %q does not exist", linkname)
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("hard link target %q is a directory", linkname)
	}
	if target == full {
		return nil
	}
	if err := replace(full); err != nil {
		return err
	}
	return os.Link(target, full)
}

// mknod makes a device node or fifo.
func (a *applier) mknod(full string, hdr *tar.Header) error {
	if err := replace(full); err != nil {
		return err
	}
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknod(full, mode, int(dev)); err != nil {
		return fmt.Errorf("mknod (needs root): %w", err)
	}
	return nil
}

// replace removes whatever is at full (a file, a symlink or a whole tree).
func replace(full string) error {
	if _, err := os.Lstat(full); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return os.RemoveAll(full)
}
