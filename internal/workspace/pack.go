package workspace

import (
	"bufio"
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

// packWriter collects objects into one pack file, which is much faster than
// one loose object file per blob; finish indexes it with git index-pack.
type packWriter struct {
	st    *store
	f     *os.File
	bw    *bufio.Writer
	zw    *zlib.Writer
	count uint32
	seen  map[string]bool
}

func newPackWriter(st *store) (*packWriter, error) {
	f, err := os.CreateTemp(filepath.Join(st.objects, "pack"), "tmp_pack_")
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
	if p.seen[oid] {
		return nil
	}
	p.seen[oid] = true
	// Entry header: the type and the size, 4 bits then 7 bits a byte.
	size := uint64(len(content))
	hdr := []byte{typ<<4 | byte(size&15)}
	for size >>= 4; size > 0; size >>= 7 {
		hdr[len(hdr)-1] |= 0x80
		hdr = append(hdr, byte(size&0x7f))
	}
	if _, err := p.bw.Write(hdr); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	p.zw.Reset(p.bw)
	if _, err := p.zw.Write(content); err != nil {
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

// finish completes the pack (count and trailing checksum), moves it into
// the object directory and indexes it.
func (p *packWriter) finish(ctx context.Context, dir string, h hash.Hash) error {
	defer p.abort() // no-op once renamed, except for closing
	if p.count == 0 {
		return nil
	}
	if err := p.bw.Flush(); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], p.count)
	if _, err := p.f.WriteAt(n[:], 8); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	if _, err := io.Copy(h, p.f); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	sum := h.Sum(nil)
	if _, err := p.f.Write(sum); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	if err := p.f.Chmod(0o444); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	name := filepath.Join(p.st.objects, "pack", "pack-"+hex.EncodeToString(sum)+".pack")
	if err := os.Rename(p.f.Name(), name); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	if _, err := p.st.run(ctx, dir, "", nil, "index-pack", name); err != nil {
		os.Remove(name)
		return fmt.Errorf("index guest files: %w", err)
	}
	return nil
}
