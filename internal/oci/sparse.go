package oci

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"banger/internal/api"
)

// sparseBlock is the granularity at which WriteSparse looks for zeros: the
// usual filesystem block, so every skipped block is a real hole.
const sparseBlock = 4096

var zeroBlock [sparseBlock]byte

// WriteSparse copies r into f from offset 0, seeking over all-zero blocks
// instead of writing them, and sets f's size to the bytes copied. A tar
// member stored sparse (GNU or PAX sparse), whose holes archive/tar hands
// back as zeros, so takes only the blocks of its data on disk.
func WriteSparse(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := writeNonZero(f, buf[:n], off); err != nil {
				return off, err
			}
			off += int64(n)
		}
		if rerr == io.EOF || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return off, rerr
		}
	}
	if err := f.Truncate(off); err != nil {
		return off, err
	}
	return off, nil
}

// writeNonZero writes the runs of non-zero blocks of p at off.
func writeNonZero(f *os.File, p []byte, off int64) error {
	start := -1 // start of the current non-zero run
	for i := 0; i < len(p); i += sparseBlock {
		end := min(i+sparseBlock, len(p))
		zero := bytes.Equal(p[i:end], zeroBlock[:end-i])
		switch {
		case !zero && start < 0:
			start = i
		case zero && start >= 0:
			if _, err := f.WriteAt(p[start:i], off+int64(start)); err != nil {
				return err
			}
			start = -1
		}
	}
	if start >= 0 {
		if _, err := f.WriteAt(p[start:], off+int64(start)); err != nil {
			return err
		}
	}
	return nil
}

// SetMaxBytes bounds every blob the client stores, and the sum of an
// archive's members unpacked on import: a larger one fails with
// api.ErrInvalid before (or as soon as) it passes the limit. 0 means none.
func (c *Client) SetMaxBytes(n int64) { c.cache.max = n }

// tooLarge is the error for content over the limit.
func tooLarge(what string, limit int64) error {
	return api.Errorf(api.ErrInvalid, "%s is larger than the %s limit on image size (bangerd --max-image-size)", what, FormatSize(limit))
}

// limitReader fails once more than max bytes have been read (max > 0).
type limitReader struct {
	r    io.Reader
	max  int64
	n    int64
	what string
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.max > 0 && l.n > l.max {
		return n, tooLarge(l.what, l.max)
	}
	return n, err
}

// FormatSize formats a byte count with a binary unit, for messages.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(n)/(1<<40))
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", (n+1023)/1024)
	}
}
