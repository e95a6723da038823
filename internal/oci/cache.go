package oci

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blobCache is a content-addressed store of blobs under DIR/sha256/<hex>.
// Blobs are written to a temporary file next to their final name, verified
// against their digest while being written, and renamed into place only when
// the digest matches, so a cached file is always complete and correct.
type blobCache struct {
	dir string
	// max bounds one blob's size (0: no bound).
	max int64
}

// checkDigest refuses digests that are not well-formed sha256 digests, so a
// hostile manifest cannot turn a digest into a path outside the cache.
func checkDigest(h v1.Hash) error {
	if h.Algorithm != "sha256" {
		return fmt.Errorf("unsupported digest algorithm %q", h.Algorithm)
	}
	if len(h.Hex) != 64 {
		return fmt.Errorf("malformed digest %q", h.String())
	}
	if _, err := hex.DecodeString(h.Hex); err != nil {
		return fmt.Errorf("malformed digest %q", h.String())
	}
	return nil
}

func (b *blobCache) path(h v1.Hash) string {
	return filepath.Join(b.dir, "sha256", h.Hex)
}

// has reports whether the blob is in the cache.
func (b *blobCache) has(h v1.Hash) bool {
	fi, err := os.Stat(b.path(h))
	return err == nil && fi.Mode().IsRegular()
}

// read returns the whole blob, for small blobs (manifests, configs).
func (b *blobCache) read(h v1.Hash) ([]byte, error) {
	return os.ReadFile(b.path(h))
}

// write stores the content of r as blob h. size is the expected size, or -1
// when unknown. count, when not nil, is called with the running byte count.
func (b *blobCache) write(h v1.Hash, size int64, r io.Reader, count func(n int64)) (err error) {
	if err := checkDigest(h); err != nil {
		return err
	}
	dir := filepath.Join(b.dir, "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create blob cache: %w", err)
	}
	if b.max > 0 && size > b.max {
		return tooLarge(fmt.Sprintf("blob %s (%s)", h, FormatSize(size)), b.max)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+h.Hex[:12]+"-*")
	if err != nil {
		return fmt.Errorf("create blob temp file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	hw := sha256.New()
	cw := &countWriter{h: hw, count: count}
	lr := &limitReader{r: r, max: b.max, what: "blob " + h.String()}
	n, err := WriteSparse(tmp, io.TeeReader(lr, cw))
	if err != nil {
		return fmt.Errorf("write blob %s: %w", h, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("blob %s: got %d bytes, want %d", h, n, size)
	}
	if got := hex.EncodeToString(hw.Sum(nil)); got != h.Hex {
		return fmt.Errorf("blob %s: digest mismatch (content is sha256:%s)", h, got)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write blob %s: %w", h, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write blob %s: %w", h, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write blob %s: %w", h, err)
	}
	if err := os.Rename(tmp.Name(), b.path(h)); err != nil {
		return fmt.Errorf("write blob %s: %w", h, err)
	}
	done = true
	return nil
}

// writeBytes stores a small blob held in memory.
func (b *blobCache) writeBytes(h v1.Hash, data []byte) error {
	return b.write(h, int64(len(data)), bytes.NewReader(data), nil)
}

// countWriter feeds a hash and reports the running total.
type countWriter struct {
	h     hash.Hash
	n     int64
	count func(int64)
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	if c.count != nil {
		c.count(c.n)
	}
	return len(p), nil
}
