package authz

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"banger/internal/api"

	"golang.org/x/sys/unix"
)

// Entry is one item of a tree read with Walk: a directory, or a regular
// file opened by the caller.
type Entry struct {
	Path string   // slash-separated, inside the tree, never ".." or absolute
	Dir  bool     // a directory (File is nil)
	File *os.File // the open file; closed by Walk after fn returns
}

// Walk reads the tree under dir as the caller in ctx: a child with the
// caller's credentials walks it and opens every regular file, and fn gets
// each directory and each open file. Symbolic links to files are followed
// with the caller's rights (one the caller cannot read fails the walk);
// links to directories, dangling links and special files are skipped. When
// include is not empty only the paths it names (and what is under them) are
// visited. The daemon never opens a path inside dir by name.
func Walk(ctx context.Context, dir string, include []string, fn func(Entry) error) error {
	if !filepath.IsAbs(dir) {
		return api.Errorf(api.ErrInvalid, "path %q must be absolute", dir)
	}
	return runAs(ctx, CallerFrom(ctx), "walk", dir, include, func(m message, f *os.File) error {
		if f != nil {
			defer f.Close()
		}
		if m.Err != "" {
			return cannotRead(path.Join(dir, m.Path), m)
		}
		if err := checkRel(m.Path); err != nil {
			return err
		}
		if m.Dir != (f == nil) {
			return fmt.Errorf("walk %s: unexpected answer from the helper", dir)
		}
		return fn(Entry{Path: m.Path, Dir: m.Dir, File: f})
	})
}

// checkRel accepts a clean relative path ("." for the root).
func checkRel(p string) error {
	if len(p) > maxRelPath || p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p ||
		p == ".." || strings.HasPrefix(p, "../") || strings.ContainsRune(p, 0) {
		return fmt.Errorf("walk: bad path %q from the helper", p)
	}
	return nil
}

// included reports whether rel is to be visited: it is named by include, is
// under a named path, or is a directory on the way to one.
func included(rel string, include []string) bool {
	if len(include) == 0 || rel == "." {
		return true
	}
	for _, in := range include {
		if rel == in || strings.HasPrefix(rel, in+"/") || strings.HasPrefix(in, rel+"/") {
			return true
		}
	}
	return false
}

// walk is the child side of Walk, running with the caller's credentials.
func walk(root string, include []string, emit func(message, *os.File) error) error {
	rootFile, err := openFlags(root)
	if err != nil {
		return emit(failure(err), nil)
	}
	fi, err := rootFile.Stat()
	rootFile.Close()
	if err != nil || !fi.IsDir() {
		return emit(message{Err: "not a directory", Code: "denied"}, nil)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, rerr := filepath.Rel(root, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if err != nil {
			if e := emit(withPath(failure(err), rel), nil); e != nil {
				return e
			}
			return errStop
		}
		if !included(rel, include) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if len(rel) > maxRelPath {
			return fmt.Errorf("path %s is over %d bytes", rel, maxRelPath)
		}
		switch {
		case d.IsDir():
			return emit(message{Path: rel, Dir: true}, nil)
		case d.Type().IsRegular(), d.Type()&fs.ModeSymlink != 0:
			f, err := openFlags(p)
			if err != nil {
				if d.Type()&fs.ModeSymlink != 0 && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ELOOP)) {
					return nil // a dangling link names nothing to copy
				}
				if e := emit(withPath(failure(err), rel), nil); e != nil {
					return e
				}
				return errStop
			}
			st, err := f.Stat()
			if err != nil || !st.Mode().IsRegular() {
				f.Close()
				return nil // a link to a directory or a special file
			}
			return emit(message{Path: rel}, f)
		}
		return nil
	})
	return err
}

func withPath(m message, rel string) message {
	m.Path = rel
	return m
}

// checkWrite is the child side of CheckWrite: path must be writable, or
// creatable in its folder.
func checkWrite(p string) message {
	err := unix.Access(p, unix.W_OK)
	if errors.Is(err, unix.ENOENT) {
		err = unix.Access(filepath.Dir(p), unix.W_OK|unix.X_OK)
	}
	if err != nil {
		return failure(err)
	}
	return message{}
}
