package initramfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/cavaliergopher/cpio"
)

// Entry is one member of a cpio archive, as read back by List.
type Entry struct {
	Name  string
	Mode  uint32 // type and permission bits, as in the archive (e.g. 0100644)
	Size  int64
	Major uint32 // device numbers, for device nodes
	Minor uint32
	Data  []byte // contents of regular files
}

// IsDir reports whether the entry is a directory.
func (e Entry) IsDir() bool { return e.Mode&cpio.ModeType == cpio.TypeDir }

// IsCharDev reports whether the entry is a character device.
func (e Entry) IsCharDev() bool { return e.Mode&cpio.ModeType == cpio.TypeChar }

// List reads every entry of the newc archives in r (several archives
// concatenated, as the kernel accepts them, with optional zero padding in
// between). It is meant for tests and diagnostics: file contents are held in
// memory.
func List(r io.Reader) ([]Entry, error) {
	br := bufio.NewReader(r)
	var out []Entry
	for {
		if err := skipZeros(br); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		rec := &headerRecorder{r: br}
		cr := cpio.NewReader(rec)
		for {
			rec.reset()
			h, err := cr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("read cpio entry %d: %w", len(out), err)
			}
			e := Entry{Name: h.Name, Mode: uint32(h.Mode), Size: h.Size}
			e.Major, e.Minor = rec.rdev()
			if h.Mode.IsRegular() {
				if e.Data, err = io.ReadAll(cr); err != nil {
					return nil, fmt.Errorf("read cpio entry %s: %w", h.Name, err)
				}
			}
			out = append(out, e)
		}
	}
}

// skipZeros skips padding between concatenated archives; io.EOF at the end.
func skipZeros(br *bufio.Reader) error {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return err
		}
		if b[0] != 0 {
			return nil
		}
		if _, err := br.Discard(1); err != nil {
			return err
		}
	}
}

// headerRecorder keeps the first bytes read after reset, so the device
// numbers the cpio package does not expose can be read from the raw header.
type headerRecorder struct {
	r   io.Reader
	buf []byte
}

func (h *headerRecorder) reset() { h.buf = h.buf[:0] }

func (h *headerRecorder) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if room := newcHeaderLen + 8 - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(n, room)]...)
	}
	return n, err
}

// rdev reads the device numbers of the header recorded since reset (after
// any padding of the entry before it).
func (h *headerRecorder) rdev() (major, minor uint32) {
	i := bytes.Index(h.buf, []byte("07070"))
	if i < 0 || len(h.buf)-i < newcHeaderLen {
		return 0, 0
	}
	b := h.buf[i:]
	return uint32(parseHex(b[rdevMajorOff : rdevMajorOff+8])), uint32(parseHex(b[rdevMinorOff : rdevMinorOff+8]))
}

func parseHex(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		}
	}
	return v
}
