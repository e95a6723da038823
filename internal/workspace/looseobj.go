package workspace

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// smallBlob is the size up to which blobs are hashed in memory, so that
// objects the source repository already has are not written again.
const smallBlob = 1 << 20

// objectWriter writes objects into a store's object directory, only those
// that neither the store nor its alternates have (see tree.go).
type objectWriter struct {
	st      *store
	dir     string // repository to run git in
	zw      *zlib.Writer
	buf     bytes.Buffer
	checker *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	pack    *packWriter
}

func newObjectWriter(st *store, dir string) *objectWriter {
	zw, _ := zlib.NewWriterLevel(io.Discard, zlib.BestSpeed)
	return &objectWriter{st: st, dir: dir, zw: zw}
}

// close stops the existence checker and drops an unfinished pack.
func (w *objectWriter) close() {
	if w.pack != nil {
		w.pack.abort()
		w.pack = nil
	}
	if w.checker != nil {
		w.in.Close()
		w.checker.Wait()
		w.checker = nil
	}
}

func (w *objectWriter) newHash() (hash.Hash, error) {
	switch w.st.format {
	case "sha1", "":
		return sha1.New(), nil
	case "sha256":
		return sha256.New(), nil
	}
	return nil, fmt.Errorf("unsupported object format %q", w.st.format)
}

// exists asks a long-running git cat-file --batch-check whether oid is in
// the store or one of its alternates.
func (w *objectWriter) exists(ctx context.Context, oid string) (bool, error) {
	if w.checker == nil {
		cmd := w.st.git.command(ctx, w.dir, w.st.env(""), "cat-file", "--batch-check")
		in, err := cmd.StdinPipe()
		if err != nil {
			return false, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return false, err
		}
		if err := cmd.Start(); err != nil {
			return false, fmt.Errorf("start git cat-file: %w", err)
		}
		w.checker, w.in, w.out = cmd, in, bufio.NewReader(out)
	}
	if _, err := io.WriteString(w.in, oid+"\n"); err != nil {
		return false, fmt.Errorf("check object %s: %w", oid, err)
	}
	line, err := w.out.ReadString('\n')
	if err != nil {
		return false, fmt.Errorf("check object %s: %w", oid, err)
	}
	return !strings.HasSuffix(line, " missing\n"), nil
}

// writeBlob stores the next size bytes of r as a loose blob object and
// returns its id. Writing objects directly avoids one git process per file.
func (w *objectWriter) writeBlob(ctx context.Context, r io.Reader, size int64) (string, error) {
	if size > smallBlob {
		return w.writeLarge(ctx, r, size)
	}
	h, err := w.newHash()
	if err != nil {
		return "", err
	}
	w.buf.Reset()
	fmt.Fprintf(&w.buf, "blob %d\x00", size)
	if _, err := io.CopyN(&w.buf, r, size); err != nil {
		return "", fmt.Errorf("write blob: %w", err)
	}
	h.Write(w.buf.Bytes())
	oid := hex.EncodeToString(h.Sum(nil))
	if ok, err := w.exists(ctx, oid); err != nil || ok {
		return oid, err
	}
	content := w.buf.Bytes()[bytes.IndexByte(w.buf.Bytes(), 0)+1:]
	return oid, w.add(objBlob, oid, content)
}

// add queues an object the caller knows to be missing for the pack that
// finish writes.
func (w *objectWriter) add(typ byte, oid string, content []byte) error {
	if w.pack == nil {
		var err error
		if w.pack, err = newPackWriter(w.st); err != nil {
			return err
		}
	}
	return w.pack.add(typ, oid, content)
}

// finish makes the collected objects readable by git.
func (w *objectWriter) finish(ctx context.Context) error {
	if w.pack == nil {
		return nil
	}
	h, err := w.newHash()
	if err != nil {
		return err
	}
	err = w.pack.finish(ctx, w.dir, h)
	w.pack = nil
	return err
}

// writeLarge streams a blob to a temporary file and renames it into place.
func (w *objectWriter) writeLarge(ctx context.Context, r io.Reader, size int64) (string, error) {
	st := w.st
	h, err := w.newHash()
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(st.objects, "tmp_obj_")
	if err != nil {
		return "", fmt.Errorf("write blob: %w", err)
	}
	tmpName := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmpName)
		}
	}()
	w.zw.Reset(f)
	mw := io.MultiWriter(h, w.zw)
	if _, err := fmt.Fprintf(mw, "blob %d\x00", size); err != nil {
		return "", fmt.Errorf("write blob: %w", err)
	}
	n, err := io.CopyN(mw, r, size)
	if err != nil {
		return "", fmt.Errorf("write blob: read %d of %d bytes: %w", n, size, err)
	}
	if err := w.zw.Close(); err != nil {
		return "", fmt.Errorf("write blob: %w", err)
	}
	if err := f.Chmod(0o444); err != nil {
		return "", fmt.Errorf("write blob: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write blob: %w", err)
	}
	oid := hex.EncodeToString(h.Sum(nil))
	ok = true
	if have, err := w.exists(ctx, oid); err != nil || have {
		os.Remove(tmpName)
		return oid, err
	}
	dir := filepath.Join(st.objects, oid[:2])
	if err := st.git.mkdir(dir); err != nil {
		os.Remove(tmpName)
		return "", err
	}
	if err := os.Rename(tmpName, filepath.Join(dir, oid[2:])); err != nil {
		os.Remove(tmpName)
		return "", fmt.Errorf("write blob: %w", err)
	}
	return oid, nil
}
