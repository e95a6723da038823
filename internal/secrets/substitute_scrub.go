package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// replacer takes secret values out of responses: each value (and its
// Basic-auth encodings) becomes the placeholder.
type replacer struct {
	from, to [][]byte
	maxLen   int
}

func (r *replacer) add(from, to string) {
	if from == "" || from == to {
		return
	}
	for _, f := range r.from {
		if string(f) == from {
			return
		}
	}
	r.from = append(r.from, []byte(from))
	r.to = append(r.to, []byte(to))
	r.maxLen = max(r.maxLen, len(from))
}

// addValue adds value → placeholder, and the forms in which a server most
// often echoes a value it was sent: percent-encoded (query or path),
// JSON-escaped, and base64 on its own. A placeholder is letters, digits,
// '-' and '_', the same in every one of those forms but base64.
func (r *replacer) addValue(value, placeholder string) {
	r.add(value, placeholder)
	r.add(url.QueryEscape(value), placeholder)
	r.add(url.PathEscape(value), placeholder)
	for _, html := range []bool{false, true} {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(value) == nil {
			q := strings.TrimSpace(b.String())
			r.add(q[1:len(q)-1], placeholder)
		}
	}
	// Unpadded: it also finds the padded form (the padding stays).
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		r.add(enc.EncodeToString([]byte(value)), enc.EncodeToString([]byte(placeholder)))
	}
}

// addBasic adds base64(user:value) → base64(user:placeholder).
func (r *replacer) addBasic(user, value, placeholder string) {
	enc := base64.StdEncoding.EncodeToString
	r.add(enc([]byte(user+":"+value)), enc([]byte(user+":"+placeholder)))
}

func (r *replacer) empty() bool { return len(r.from) == 0 }

// changesLength reports whether replacing may change a body's length.
func (r *replacer) changesLength() bool {
	for i := range r.from {
		if len(r.from[i]) != len(r.to[i]) {
			return true
		}
	}
	return false
}

// String replaces in s.
func (r *replacer) String(s string) string {
	if r.empty() {
		return s
	}
	out := r.replace(nil, []byte(s), true)
	return string(out.done)
}

func (r *replacer) scrubHeader(h http.Header) {
	for k, vs := range h {
		for i, v := range vs {
			vs[i] = r.String(v)
		}
		if nk := r.String(k); nk != k {
			h[nk] = vs
			delete(h, k)
		}
	}
}

// next is the earliest match at or after i (the longest pattern on a tie):
// its start and pattern, or -1.
func (r *replacer) next(in []byte, i int) (at, which int) {
	at, which = -1, -1
	for k, f := range r.from {
		j := bytes.Index(in[i:], f)
		if j < 0 {
			continue
		}
		j += i
		if at < 0 || j < at || j == at && len(f) > len(r.from[which]) {
			at, which = j, k
		}
	}
	return at, which
}

// holdFrom is where in's tail may begin a match that more input would
// complete (len(in) when it cannot).
func (r *replacer) holdFrom(in []byte) int {
	for k := max(0, len(in)-r.maxLen+1); k < len(in); k++ {
		rest := in[k:]
		for _, f := range r.from {
			if len(rest) < len(f) && bytes.HasPrefix(f, rest) {
				return k
			}
		}
	}
	return len(in)
}

type replaced struct {
	done []byte // replaced output
	keep int    // bytes at in's end held back
}

// replace appends to dst the replaced bytes of in that are decided (all of
// them when final) and says how many of in's last bytes are held back.
func (r *replacer) replace(dst, in []byte, final bool) replaced {
	limit := len(in)
	if !final {
		limit = r.holdFrom(in)
	}
	i := 0
	for {
		j, k := r.next(in, i)
		if j < 0 || j >= limit {
			break
		}
		dst = append(dst, in[i:j]...)
		dst = append(dst, r.to[k]...)
		i = j + len(r.from[k])
	}
	end := max(i, limit)
	dst = append(dst, in[i:end]...)
	return replaced{done: dst, keep: len(in) - end}
}

// scrubReader replaces as it streams, holding back only bytes that may
// begin a value split across reads.
type scrubReader struct {
	r     io.ReadCloser
	rep   *replacer
	buf   []byte
	in    []byte // read, not yet decided
	obuf  []byte
	out   []byte // decided, not yet returned
	err   error
	onEOF func()
}

func newScrubReader(r io.ReadCloser, rep *replacer, onEOF func()) *scrubReader {
	return &scrubReader{r: r, rep: rep, buf: make([]byte, 32<<10), onEOF: onEOF}
}

func (s *scrubReader) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			if len(s.in) > 0 {
				s.process(true)
				continue
			}
			if s.err == io.EOF && s.onEOF != nil {
				s.onEOF()
				s.onEOF = nil
			}
			return 0, s.err
		}
		n, err := s.r.Read(s.buf)
		s.in = append(s.in, s.buf[:n]...)
		s.err = err
		s.process(err != nil)
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

func (s *scrubReader) process(final bool) {
	res := s.rep.replace(s.obuf[:0], s.in, final)
	s.obuf = res.done
	s.out = res.done
	s.in = append(s.in[:0], s.in[len(s.in)-res.keep:]...)
}

func (s *scrubReader) Close() error { return s.r.Close() }
