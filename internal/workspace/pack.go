package workspace

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
)

// packWriter collects objects into one pack file in the daemon's own
// folder, which is much faster than one loose object file per blob; finish
// hands it to git index-pack --stdin running as the caller, which writes the
// pack and its index into the caller's object directory.
type packWriter struct {
	st    *store
	f     *os.File
	bw    *bufio.Writer
	zw    *zlib.Writer
	count uint32
	seen  map[string]bool
}

func newPackWriter(st *store) (*packWriter, error) {
	f, err := os.CreateTemp(st.priv, "tmp_pack_")
	if err != nil {
		return nil, fmt.Errorf("write pack: %w", err)
	}
	p := &packWriter{st: st, f: f, bw: bufio.NewWriterSize(f, 256<<10), seen: map[string]bool{}}
	p.zw, _ = zlib.NewWriterLevel(p.bw, zlib.BestSpeed)
	// The object count is filled in by finish.
	if _, err := p.bw.Write([]byte{'P', 'A', 'C', 'K', 0, 0, 0, 2, 0, 0, 0, 0}); err != nil {
		p.abort()
		return nil, fmt.Errorf("write pack: %w", err)
	}
	return p, nil
}

// Pack object types.
const (
	objTree byte = 2
	objBlob byte = 3
)

// add appends the object oid of type typ with the given content, once.
func (p *packWriter) add(typ byte, oid string, content []byte) error {
	return p.addReader(typ, oid, int64(len(content)), bytes.NewReader(content))
}

// addReader appends the object oid of type typ whose size bytes come from
// r, once.
func (p *packWriter) addReader(typ byte, oid string, size int64, r io.Reader) error {
	if p.seen[oid] {
		return nil
	}
	p.seen[oid] = true
	// Entry header: the type and the size, 4 bits then 7 bits a byte.
	u := uint64(size)
	hdr := []byte{typ<<4 | byte(u&15)}
	for u >>= 4; u > 0; u >>= 7 {
		hdr[len(hdr)-1] |= 0x80
		hdr = append(hdr, byte(u&0x7f))
	}
	if _, err := p.bw.Write(hdr); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	p.zw.Reset(p.bw)
	if _, err := io.CopyN(p.zw, r, size); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	if err := p.zw.Close(); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	p.count++
	return nil
}

func (p *packWriter) abort() {
	p.f.Close()
	os.Remove(p.f.Name())
}

// finish completes the pack (count and trailing checksum), keeps it in the
// daemon's folder and indexes it, as the caller, into the object directory
// that env names (the store's, or a scratch one). It returns the kept
// pack's path ("" for an empty pack).
func (p *packWriter) finish(ctx context.Context, dir string, env []string, h hash.Hash) (string, error) {
	defer p.abort() // no-op once renamed, except for closing
	if p.count == 0 {
		return "", nil
	}
	if err := p.bw.Flush(); err != nil {
		return "", fmt.Errorf("write pack: %w", err)
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], p.count)
	if _, err := p.f.WriteAt(n[:], 8); err != nil {
		return "", fmt.Errorf("write pack: %w", err)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("write pack: %w", err)
	}
	if _, err := io.Copy(h, p.f); err != nil {
		return "", fmt.Errorf("write pack: %w", err)
	}
	sum := h.Sum(nil)
	if _, err := p.f.Write(sum); err != nil {
		return "", fmt.Errorf("write pack: %w", err)
	}
	name := filepath.Join(p.st.priv, "pack-"+hex.EncodeToString(sum)+".pack")
	if err := os.Rename(p.f.Name(), name); err != nil {
		return "", fmt.Errorf("write pack: %w", err)
	}
	if err := p.st.indexPack(ctx, dir, env, p.f); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// indexPack streams the pack f (the daemon's) to git index-pack --stdin
// running as the caller in dir with env.
func (st *store) indexPack(ctx context.Context, dir string, env []string, f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("index objects: %w", err)
	}
	// Through a pipe: the caller's process gets no descriptor of the
	// daemon's file.
	if _, err := st.git.run(ctx, dir, env, struct{ io.Reader }{f}, "index-pack", "--stdin"); err != nil {
		return fmt.Errorf("index objects: %w", err)
	}
	return nil
}
