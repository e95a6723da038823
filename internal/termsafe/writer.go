package termsafe

import (
	"io"
	"strings"
	"unicode/utf8"
)

// Writer escapes a stream the way Text does (a serial console followed as
// it grows). A UTF-8 sequence or a CR LF pair split between two writes is
// held back until the next write or Flush, so it is judged whole.
type Writer struct {
	w       io.Writer
	pending []byte
}

// NewWriter returns a Writer that writes the escaped stream to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes p and writes it; it reports len(p) on success.
func (t *Writer) Write(p []byte) (int, error) {
	buf := append(t.pending, p...)
	keep := heldBack(buf)
	var b strings.Builder
	escape(&b, buf[:len(buf)-keep], true)
	t.pending = append([]byte(nil), buf[len(buf)-keep:]...)
	if _, err := io.WriteString(t.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what was held back (escaped as it stands).
func (t *Writer) Flush() error {
	if len(t.pending) == 0 {
		return nil
	}
	var b strings.Builder
	escape(&b, t.pending, true)
	t.pending = t.pending[:0]
	_, err := io.WriteString(t.w, b.String())
	return err
}

// heldBack is how many trailing bytes of p may change meaning with what
// comes next: a CR (CR LF is kept, a lone CR escaped) or the start of an
// incomplete UTF-8 sequence.
func heldBack(p []byte) int {
	n := len(p)
	if n == 0 {
		return 0
	}
	if p[n-1] == '\r' {
		return 1
	}
	for i := n - 1; i >= 0 && i >= n-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				return n - i
			}
			return 0
		}
	}
	return 0
}
