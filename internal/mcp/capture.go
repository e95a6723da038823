package mcp

import (
	"fmt"
	"strings"
	"sync"
)

// capBuffer keeps at most max bytes of a stream: the first half and the
// last half, counting everything written.
type capBuffer struct {
	mu    sync.Mutex
	half  int
	head  []byte
	tail  []byte
	total int64
}

func newCapBuffer(max int) *capBuffer { return &capBuffer{half: max / 2} }

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += int64(len(p))
	rest := p
	if room := 2*b.half - len(b.head); len(b.tail) == 0 && room > 0 {
		n := min(room, len(rest))
		b.head = append(b.head, rest[:n]...)
		rest = rest[n:]
	}
	if len(rest) > 0 {
		b.tail = append(b.tail, rest...)
		if len(b.tail) > 4*b.half {
			b.tail = append([]byte(nil), b.tail[len(b.tail)-b.half:]...)
		}
	}
	return len(p), nil
}

// Result returns the kept text and whether anything was left out.
func (b *capBuffer) Result() (text string, total int64, truncated bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.total <= int64(2*b.half) {
		return string(b.head) + string(b.tail), b.total, false
	}
	head := b.head[:min(len(b.head), b.half)]
	var tail []byte
	if len(b.tail) >= b.half {
		tail = b.tail[len(b.tail)-b.half:]
	} else { // the end of head belongs to the shown tail
		need := b.half - len(b.tail)
		tail = append(append([]byte(nil), b.head[len(b.head)-need:]...), b.tail...)
	}
	omitted := b.total - int64(len(head)) - int64(len(tail))
	return fmt.Sprintf("%s\n[... %d bytes omitted ...]\n%s", head, omitted, tail), b.total, true
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
