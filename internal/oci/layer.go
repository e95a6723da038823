package oci

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// Layer is one filesystem layer of an image, held in the blob cache.
type Layer struct {
	// Digest names the cached blob (compressed digest for pulled layers,
	// uncompressed diff ID for layers loaded from a docker-save tarball).
	Digest string
	// MediaType is the layer's media type as the manifest gave it.
	MediaType string
	// Size is the size in bytes of the cached blob.
	Size int64
	// Path is the cached blob file.
	Path string
}

// Open returns the layer as an uncompressed tar stream. The compression
// (gzip, zstd or none) is detected from the blob's first bytes.
func (l Layer) Open() (io.ReadCloser, error) {
	f, err := os.Open(l.Path)
	if err != nil {
		return nil, fmt.Errorf("open layer %s: %w", l.Digest, err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open layer %s: gzip: %w", l.Digest, err)
		}
		return &layerReader{Reader: zr, closers: []io.Closer{zr, f}}, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open layer %s: zstd: %w", l.Digest, err)
		}
		return &layerReader{Reader: zr, closers: []io.Closer{zstdCloser{zr}, f}}, nil
	default:
		return &layerReader{Reader: br, closers: []io.Closer{f}}, nil
	}
}

// layerReader closes the decompressor and the file together.
type layerReader struct {
	io.Reader
	closers []io.Closer
}

func (r *layerReader) Close() error {
	var first error
	for _, c := range r.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

type zstdCloser struct{ d *zstd.Decoder }

func (z zstdCloser) Close() error { z.d.Close(); return nil }
