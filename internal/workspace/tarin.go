package workspace

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"banger/internal/api"
	"banger/internal/tarname"
)

// maxLinkTarget bounds a symlink target read from the guest.
const maxLinkTarget = 4096

// guestFile is one file of the guest workspace.
type guestFile struct {
	mode string // 100644, 100755 or 120000
	oid  string
}

// tarPath turns a tar member name into a workspace path. skip is set for the
// root and for anything inside a .git directory.
func tarPath(name string) (p string, skip bool, err error) {
	if len(name) > maxPathLen {
		return "", false, api.Errorf(api.ErrInvalid, "member name of %d bytes (starting %q) is over the %d byte limit", len(name), name[:64], maxPathLen)
	}
	p, err = tarname.Clean(name)
	if err != nil {
		return "", false, fmt.Errorf("unsafe path: %w", err)
	}
	if p == "." {
		return "", true, nil
	}
	for c := range strings.SplitSeq(p, "/") {
		if isGitName(c) {
			return "", true, nil
		}
	}
	return p, false, nil
}

// isGitName reports whether a path component names a .git directory, also in
// the spellings some file systems treat as the same name.
func isGitName(c string) bool {
	c = strings.ToLower(strings.TrimRight(c, ". "))
	return c == ".git" || c == "git~1"
}

// readGuestTar reads the guest workspace tar from r, storing file contents
// as blobs, and returns the files by path.
func (st *store) readGuestTar(ctx context.Context, dir string, r io.Reader, l Limits) (map[string]guestFile, error) {
	ow := newObjectWriter(st, dir)
	defer ow.close()
	files := map[string]guestFile{}
	var total int64
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, ow.finish(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("read guest workspace: %w", err)
		}
		p, skip, err := tarPath(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("read guest workspace: %w", err)
		}
		if skip {
			continue
		}
		var f guestFile
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			if hdr.Size > l.MaxFileBytes {
				return nil, api.Errorf(api.ErrInvalid, "guest file %q is %d bytes, over the %d byte per-file limit", p, hdr.Size, l.MaxFileBytes)
			}
			if total += hdr.Size; total > l.MaxTotalBytes {
				return nil, api.Errorf(api.ErrInvalid, "guest workspace is over the %d byte limit", l.MaxTotalBytes)
			}
			f.mode = "100644"
			if hdr.Mode&0o111 != 0 {
				f.mode = "100755"
			}
			if f.oid, err = ow.writeBlob(ctx, tr, hdr.Size); err != nil {
				return nil, fmt.Errorf("read guest file %q: %w", p, err)
			}
		case tar.TypeSymlink:
			if len(hdr.Linkname) > maxLinkTarget || hdr.Linkname == "" {
				return nil, api.Errorf(api.ErrInvalid, "guest symlink %q has an empty or over-long target", p)
			}
			f.mode = "120000"
			if f.oid, err = ow.writeBlob(ctx, strings.NewReader(hdr.Linkname), int64(len(hdr.Linkname))); err != nil {
				return nil, fmt.Errorf("read guest symlink %q: %w", p, err)
			}
		case tar.TypeLink:
			target, skip, err := tarPath(hdr.Linkname)
			if err != nil || skip {
				continue
			}
			var ok bool
			if f, ok = files[target]; !ok || f.mode == "120000" {
				return nil, fmt.Errorf("read guest workspace: hard link %q to unknown file %q", p, hdr.Linkname)
			}
		default:
			continue // directories are implied; devices, fifos and sockets are not workspace files
		}
		files[p] = f
		if len(files) > l.MaxFiles {
			return nil, api.Errorf(api.ErrInvalid, "guest workspace has over %d files, the file limit", l.MaxFiles)
		}
	}
}

// readGuest reads the guest workspace at guestPath (without .git) into the
// temporary store and returns its files by path.
func (s *Service) readGuest(ctx context.Context, g Guest, st *store, dir, guestPath string) (map[string]guestFile, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := g.Archive(ctx, guestPath, []string{".git"}, pw)
		if err != nil {
			err = guestErr(err, "read workspace "+guestPath)
		}
		pw.CloseWithError(err)
		done <- err
	}()
	files, readErr := st.readGuestTar(ctx, dir, pr, s.limits())
	if readErr == nil {
		// Tar writers pad the archive after its end marker: let them finish.
		io.CopyN(io.Discard, pr, 1<<20)
	}
	pr.CloseWithError(errors.New("stopped reading"))
	if readErr != nil {
		cancel()
	}
	runErr := <-done
	if readErr != nil {
		return nil, readErr
	}
	if runErr != nil {
		return nil, runErr
	}
	return files, nil
}

// filesTree stores the tree of files and returns its id. The paths go
// through git update-index, which refuses any git would not check out.
func (st *store) filesTree(ctx context.Context, dir string, files map[string]guestFile) (string, error) {
	paths := slices.Sorted(maps.Keys(files))
	var info strings.Builder
	for _, p := range paths {
		f := files[p]
		fmt.Fprintf(&info, "%s %s\t%s\x00", f.mode, f.oid, p)
	}
	index := st.newIndex()
	if _, err := st.run(ctx, dir, index, []byte(info.String()), "update-index", "--add", "-z", "--index-info"); err != nil {
		return "", fmt.Errorf("index guest workspace: %w", err)
	}
	tree, err := st.writeIndexTree(ctx, dir, index)
	if err != nil {
		return "", fmt.Errorf("index guest workspace: %w", err)
	}
	return tree, nil
}
