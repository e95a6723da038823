package workspace

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
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

// writeTar writes the files of entries (contents read from the store),
// each with modification time now, and, when gitDir is set, that directory
// as ".git", to w.
func (st *store) writeTar(ctx context.Context, dir string, entries []treeEntry, gitDir string, now time.Time, w io.Writer) error {
	tw := tar.NewWriter(w)
	if err := st.writeTreeFiles(ctx, dir, entries, tw, now); err != nil {
		return err
	}
	if gitDir != "" {
		if err := st.copyCallerTree(ctx, tw, gitDir, ".git", now); err != nil {
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
	// No directory entries: the agent makes parents as it goes, and each
	// entry would cost the emulated guest several system calls for
	// nothing (git keeps no directory modes or times).
	for _, e := range entries {
		if e.typ != "blob" {
			continue
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

// copyCallerTree writes the directories and regular files under root (in
// the caller's folder) as prefix: the caller's tar reads them and the
// daemon copies its entries, never opening a path there itself.
func (st *store) copyCallerTree(ctx context.Context, tw *tar.Writer, root, prefix string, now time.Time) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := st.git.callerCmd(ctx, "tar", "-c", "-f", "-", "-C", root, ".")
	errb := &capWriter{limit: 64 << 10}
	cmd.Stderr = errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("read %s: %w", prefix, err)
	}
	copyErr := copyTarEntries(tw, tar.NewReader(out), prefix, now)
	if copyErr != nil {
		cancel()
	}
	io.Copy(io.Discard, out)
	waitErr := cmd.Wait()
	if copyErr != nil {
		return fmt.Errorf("read %s: %w", prefix, copyErr)
	}
	if waitErr != nil {
		return fmt.Errorf("read %s: %w: %s", prefix, waitErr, strings.TrimSpace(errb.buf.String()))
	}
	return nil
}

// copyTarEntries copies directories and regular files from tr to tw under
// prefix; names are checked like guest names.
func copyTarEntries(tw *tar.Writer, tr *tar.Reader, prefix string, now time.Time) error {
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p, _, err := tarPath(hdr.Name)
		if err != nil {
			return err
		}
		name := prefix
		if p != "" {
			name = path.Join(prefix, p)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = tw.WriteHeader(&tar.Header{Name: name + "/", Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir})
		case tar.TypeReg:
			err = tw.WriteHeader(&tar.Header{Name: name, Mode: hdr.Mode & 0o755, Size: hdr.Size, ModTime: now, Typeflag: tar.TypeReg})
			if err == nil {
				_, err = io.CopyN(tw, tr, hdr.Size)
			}
		}
		if err != nil {
			return fmt.Errorf("write %q: %w", name, err)
		}
	}
}
