package workspace

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
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
	buf     bytes.Buffer
	checker *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	pack    *packWriter
}

func newObjectWriter(st *store, dir string) *objectWriter {
	return &objectWriter{st: st, dir: dir}
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

// finish makes the collected objects readable by git: the pack is indexed
// into the store (as the caller) and kept in the daemon's folder.
func (w *objectWriter) finish(ctx context.Context) error {
	if w.pack == nil {
		return nil
	}
	h, err := w.newHash()
	if err != nil {
		return err
	}
	name, err := w.pack.finish(ctx, w.dir, w.st.env(""), h)
	w.pack = nil
	if name != "" {
		w.st.packs = append(w.st.packs, name)
	}
	return err
}

// writeLarge streams a blob to a temporary file in the daemon's folder,
// hashing it, and adds it to the pack unless the store already has it.
func (w *objectWriter) writeLarge(ctx context.Context, r io.Reader, size int64) (string, error) {
	h, err := w.newHash()
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(w.st.priv, "tmp_blob_")
	if err != nil {
		return "", fmt.Errorf("write blob: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	fmt.Fprintf(h, "blob %d\x00", size)
	n, err := io.CopyN(io.MultiWriter(h, f), r, size)
	if err != nil {
		return "", fmt.Errorf("write blob: read %d of %d bytes: %w", n, size, err)
	}
	oid := hex.EncodeToString(h.Sum(nil))
	if have, err := w.exists(ctx, oid); err != nil || have {
		return oid, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("write blob: %w", err)
	}
	if w.pack == nil {
		if w.pack, err = newPackWriter(w.st); err != nil {
			return "", err
		}
	}
	return oid, w.pack.addReader(objBlob, oid, size, f)
}
