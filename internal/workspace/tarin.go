package workspace

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"banger/internal/agent/proto"
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

// errNotPrepared is the answer to a guest that sent a file as unchanged
// since prepare (proto.Unchanged) when the prepared workspace has no such
// file or one of another size or type: export then asks for every file in
// full.
var errNotPrepared = errors.New("guest file sent as unchanged is not the prepared one")

// baseline looks up the files of the prepared workspace by path (loaded at
// the first call).
type baseline struct {
	load  func() ([]treeEntry, error)
	files map[string]treeEntry
}

func (b *baseline) lookup(p string) (treeEntry, bool, error) {
	if b.files == nil {
		entries, err := b.load()
		if err != nil {
			return treeEntry{}, false, err
		}
		b.files = make(map[string]treeEntry, len(entries))
		for _, e := range entries {
			b.files[e.path] = e
		}
	}
	e, ok := b.files[p]
	return e, ok, nil
}

// readGuestTar reads the guest workspace tar from r, storing file contents
// as blobs, and returns the files by path. A file sent as unchanged since
// prepare (header only, proto.PAXUnchanged) takes its content from base;
// errNotPrepared when base has no such file of that size.
func (st *store) readGuestTar(ctx context.Context, dir string, r io.Reader, l Limits, base *baseline) (map[string]guestFile, error) {
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
			if size, ok := hdr.PAXRecords[proto.PAXUnchanged]; ok {
				if f, err = unchangedFile(p, hdr, size, base); err != nil {
					return nil, err
				}
				break
			}
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

// unchangedFile is the guest file p sent as unchanged since prepare with
// the given size: the prepared file's content with the mode the guest
// reports. The content comes from the host's own record of the prepared
// tree, never from the guest: a guest that says a file it changed is
// unchanged (a forged time stamp, a clock set back) only hides its own edit
// from the export, which then reports the prepared content.
func unchangedFile(p string, hdr *tar.Header, size string, base *baseline) (guestFile, error) {
	if base == nil {
		return guestFile{}, fmt.Errorf("read guest workspace: %q sent as unchanged, which was not asked for", p)
	}
	e, ok, err := base.lookup(p)
	if err != nil {
		return guestFile{}, err
	}
	if !ok || e.typ != "blob" || e.mode == "120000" || strconv.FormatInt(e.size, 10) != size || hdr.Size != 0 {
		return guestFile{}, fmt.Errorf("%w: %q", errNotPrepared, p)
	}
	f := guestFile{mode: "100644", oid: e.oid}
	if hdr.Mode&0o111 != 0 {
		f.mode = "100755"
	}
	return f, nil
}

// readGuest reads the guest workspace at guestPath (without .git) into the
// temporary store and returns its files by path. With unchanged set the
// guest leaves out the content of files still as prepare left them, which
// base (the prepared tree) provides; should the guest send one that base
// does not have, every file is read again in full.
func (s *Service) readGuest(ctx context.Context, g Guest, st *store, dir, guestPath string, unchanged *proto.Unchanged, base *baseline) (map[string]guestFile, error) {
	if unchanged == nil {
		base = nil // a file sent as unchanged anyway is refused
	}
	files, err := s.readGuestOnce(ctx, g, st, dir, guestPath, unchanged, base)
	if unchanged != nil && errors.Is(err, errNotPrepared) {
		s.log.Warn("guest sent a file as unchanged that prepare did not give it; reading every file", "guest_path", guestPath, "err", err)
		return s.readGuestOnce(ctx, g, st, dir, guestPath, nil, nil)
	}
	return files, err
}

func (s *Service) readGuestOnce(ctx context.Context, g Guest, st *store, dir, guestPath string, unchanged *proto.Unchanged, base *baseline) (map[string]guestFile, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := g.Archive(ctx, guestPath, []string{".git"}, unchanged, pw)
		if err != nil {
			err = guestErr(err, "read workspace "+guestPath)
		}
		pw.CloseWithError(err)
		done <- err
	}()
	files, readErr := st.readGuestTar(ctx, dir, pr, s.limits(), base)
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
