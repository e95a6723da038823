package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/iox"

	"golang.org/x/sys/unix"
)

// Host paths named in a request are opened once, as the caller, through the
// Authorizer; the service then works from that descriptor only, never from
// the name (which the caller may change at any time).

// openRead opens the regular file path as the caller.
func (s *Service) openRead(ctx context.Context, what, path string) (*os.File, error) {
	var f *os.File
	var err error
	if s.authz == nil {
		f, err = openRegular(path)
	} else {
		f, err = s.authz.OpenRead(ctx, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return f, nil
}

// openRegular is the in-process open used without an Authorizer (tests).
func openRegular(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, api.Errorf(api.ErrPermission, "cannot read %s: %v", path, errors.Unwrap(err))
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, api.Errorf(api.ErrInvalid, "%s is not a regular file", path)
	}
	return f, nil
}

// walk reads the tree dir as the caller.
func (s *Service) walk(ctx context.Context, dir string, fn func(authz.Entry) error) error {
	if s.authz == nil {
		return authz.Walk(ctx, dir, nil, fn)
	}
	return s.authz.Walk(ctx, dir, nil, fn)
}

// fdPath names an open descriptor of this process, for tools that want a
// path: opening it reopens the same file, whatever the caller's name now
// points to.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// importFile copies src into the new file dst (mode 0644), keeping holes,
// and returns its size. dst is removed on failure.
func importFile(ctx context.Context, src *os.File, dst string) (int64, error) {
	fi, err := src.Stat()
	if err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	err = copySparse(ctx, out, src, fi.Size())
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return 0, err
	}
	return fi.Size(), nil
}

// copySparse copies size bytes of src to dst: a reflink when the file
// system can, else the data ranges only (SEEK_DATA/SEEK_HOLE), else all.
func copySparse(ctx context.Context, dst, src *os.File, size int64) error {
	if unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())) == nil {
		return nil
	}
	if err := dst.Truncate(size); err != nil {
		return err
	}
	sfd := int(src.Fd())
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole is left
		}
		if err != nil {
			return copyAll(ctx, dst, src, size)
		}
		hole, err := unix.Seek(sfd, data, unix.SEEK_HOLE)
		if err != nil {
			return copyAll(ctx, dst, src, size)
		}
		if err := copyRange(ctx, dst, src, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// copyRange copies n bytes at off from src to dst (same offset).
func copyRange(ctx context.Context, dst, src *os.File, off, n int64) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := min(n, 64<<20)
		roff, woff := off, off
		w, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(chunk), 0)
		if err != nil || w == 0 {
			// Across file systems without copy_file_range: read and write.
			_, err := io.Copy(io.NewOffsetWriter(dst, off), io.NewSectionReader(src, off, n))
			return err
		}
		off += int64(w)
		n -= int64(w)
	}
	return nil
}

func copyAll(ctx context.Context, dst, src *os.File, size int64) error {
	_, err := io.Copy(io.NewOffsetWriter(dst, 0), iox.ContextReader(ctx, io.NewSectionReader(src, 0, size)))
	return err
}

// copyTreeAsCaller copies the tree dir, read as the caller, into the new
// root-owned directory dst: directories and regular files only.
func (s *Service) copyTreeAsCaller(ctx context.Context, dir, dst string) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	return s.walk(ctx, dir, func(e authz.Entry) error {
		target := filepath.Join(dst, filepath.FromSlash(e.Path))
		if e.Dir {
			if e.Path == "." {
				return nil
			}
			return os.Mkdir(target, 0o700)
		}
		_, err := importFile(ctx, e.File, target)
		return err
	})
}
