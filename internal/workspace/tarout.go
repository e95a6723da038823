package workspace

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"banger/internal/api"
)

// checkTree enforces the limits on a prepare tree and returns its file count
// and total size.
func checkTree(entries []treeEntry, l Limits) (int, int64, error) {
	files, total := 0, int64(0)
	for _, e := range entries {
		if e.typ != "blob" {
			continue
		}
		files++
		total += e.size
		if e.size > l.MaxFileBytes {
			return 0, 0, api.Errorf(api.ErrInvalid, "workspace file %q is %d bytes, over the %d byte per-file limit", e.path, e.size, l.MaxFileBytes)
		}
	}
	if files > l.MaxFiles {
		return 0, 0, api.Errorf(api.ErrInvalid, "workspace has %d files, over the %d file limit", files, l.MaxFiles)
	}
	if total > l.MaxTotalBytes {
		return 0, 0, api.Errorf(api.ErrInvalid, "workspace is %d bytes, over the %d byte limit", total, l.MaxTotalBytes)
	}
	return files, total, nil
}

// writeTar writes the files of entries (contents read from the store) and,
// when gitDir is set, that directory as ".git", to w.
func (st *store) writeTar(ctx context.Context, dir string, entries []treeEntry, gitDir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	if err := st.writeTreeFiles(ctx, dir, entries, tw, now); err != nil {
		return err
	}
	if gitDir != "" {
		if err := writeDirTar(tw, gitDir, ".git", now); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("%w: %w", errTarTrailer, err)
	}
	return nil
}

// errTarTrailer marks a failure to write only the end-of-archive blocks,
// which extractors may stop reading before.
var errTarTrailer = errors.New("finish tar")

func (st *store) writeTreeFiles(ctx context.Context, dir string, entries []treeEntry, tw *tar.Writer, now time.Time) error {
	cmd := st.git.command(ctx, dir, st.env(""), "cat-file", "--batch")
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start git cat-file: %w", err)
	}
	defer func() {
		in.Close()
		cmd.Wait()
	}()
	out := bufio.NewReaderSize(outPipe, 64<<10)
	dirs := map[string]bool{}
	for _, e := range entries {
		if e.typ != "blob" {
			continue
		}
		if err := writeParents(tw, e.path, dirs, now); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(in, "%s\n", e.oid); err != nil {
			return fmt.Errorf("read blob %s: %w (%s)", e.oid, err, strings.TrimSpace(errb.String()))
		}
		size, err := readBatchHeader(out, e.oid)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: e.path, Mode: 0o644, Size: size, ModTime: now, Typeflag: tar.TypeReg}
		switch e.mode {
		case "100755":
			hdr.Mode = 0o755
		case "120000":
			target := make([]byte, size)
			if _, err := io.ReadFull(out, target); err != nil {
				return fmt.Errorf("read symlink %q: %w", e.path, err)
			}
			hdr.Typeflag, hdr.Linkname, hdr.Size, hdr.Mode = tar.TypeSymlink, string(target), 0, 0o777
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %q: %w", e.path, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.CopyN(tw, out, size); err != nil {
				return fmt.Errorf("write %q: %w", e.path, err)
			}
		}
		if _, err := out.Discard(1); err != nil { // newline after the content
			return fmt.Errorf("read blob %s: %w", e.oid, err)
		}
	}
	return nil
}

// readBatchHeader reads "<oid> blob <size>\n" from git cat-file --batch.
func readBatchHeader(r *bufio.Reader, oid string) (int64, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read blob %s: %w", oid, err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[1] != "blob" {
		return 0, fmt.Errorf("read blob %s: unexpected %q", oid, strings.TrimSpace(line))
	}
	return strconv.ParseInt(f[2], 10, 64)
}

// writeParents writes directory entries for the parents of p not yet written.
func writeParents(tw *tar.Writer, p string, dirs map[string]bool, now time.Time) error {
	parent := path.Dir(p)
	if parent == "." || dirs[parent] {
		return nil
	}
	if err := writeParents(tw, parent, dirs, now); err != nil {
		return err
	}
	dirs[parent] = true
	hdr := &tar.Header{Name: parent + "/", Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %q: %w", parent, err)
	}
	return nil
}

// writeDirTar writes the regular files and directories under root as prefix.
func writeDirTar(tw *tar.Writer, root, prefix string, now time.Time) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := path.Join(prefix, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Name: name + "/", Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir})
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			hdr := &tar.Header{Name: name, Mode: int64(info.Mode().Perm()), Size: info.Size(), ModTime: now, Typeflag: tar.TypeReg}
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("write %q: %w", name, err)
			}
			if _, err := io.Copy(tw, f); err != nil {
				return fmt.Errorf("write %q: %w", name, err)
			}
		}
		return nil
	})
}
