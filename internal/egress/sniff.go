package egress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
)

// Bounds on what the guest sends before the proxy decides.
const (
	// MaxHelloBytes bounds a TLS ClientHello (all its records).
	MaxHelloBytes = 16 << 10
	// MaxHeadBytes bounds an HTTP request head.
	MaxHeadBytes = 16 << 10
)

var (
	errNotTLS   = errors.New("not a TLS handshake")
	errNoSNI    = errors.New("TLS ClientHello without a server name")
	errHello    = errors.New("malformed TLS ClientHello")
	errTooLarge = errors.New("too large")
	errNoHost   = errors.New("HTTP request without a Host header")
	errNotHTTP  = errors.New("not an HTTP/1 request")
)

// ReadClientHello reads a TLS ClientHello from r (at most MaxHelloBytes of
// handshake, which may span records) and returns the bytes read, to be
// replayed upstream, and the server name it carries (lower case, no
// trailing dot; "" with errNoSNI when there is none).
func ReadClientHello(r io.Reader) (raw []byte, sni string, err error) {
	var hs []byte // handshake bytes, across records
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return raw, "", err
		}
		raw = append(raw, hdr[:]...)
		if hdr[0] != 22 || hdr[1] != 3 {
			return raw, "", errNotTLS
		}
		n := int(binary.BigEndian.Uint16(hdr[3:]))
		if n == 0 || len(hs)+n > MaxHelloBytes {
			return raw, "", errHello
		}
		start := len(raw)
		raw = append(raw, make([]byte, n)...)
		if _, err := io.ReadFull(r, raw[start:]); err != nil {
			return raw, "", err
		}
		hs = append(hs, raw[start:]...)
		if len(hs) < 4 {
			continue
		}
		if hs[0] != 1 { // client_hello
			return raw, "", errHello
		}
		want := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
		if want > MaxHelloBytes-4 {
			return raw, "", errHello
		}
		if len(hs)-4 >= want {
			sni, err := helloSNI(hs[4 : 4+want])
			return raw, sni, err
		}
	}
}

// cursor reads big-endian fields, failing once past the end.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) take(n int) []byte {
	if c.bad || n < 0 || n > len(c.b) {
		c.bad = true
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) u8() int {
	if b := c.take(1); b != nil {
		return int(b[0])
	}
	return 0
}

func (c *cursor) u16() int {
	if b := c.take(2); b != nil {
		return int(binary.BigEndian.Uint16(b))
	}
	return 0
}

// helloSNI finds the host_name of the server_name extension in a
// ClientHello body.
func helloSNI(body []byte) (string, error) {
	c := &cursor{b: body}
	c.take(2 + 32)  // version, random
	c.take(c.u8())  // session id
	c.take(c.u16()) // cipher suites
	c.take(c.u8())  // compression methods
	if c.bad {
		return "", errHello
	}
	if len(c.b) == 0 {
		return "", errNoSNI // no extensions
	}
	ext := &cursor{b: c.take(c.u16())}
	if c.bad {
		return "", errHello
	}
	for len(ext.b) > 0 {
		typ := ext.u16()
		data := ext.take(ext.u16())
		if ext.bad {
			return "", errHello
		}
		if typ != 0 {
			continue
		}
		list := &cursor{b: data}
		names := &cursor{b: list.take(list.u16())}
		for len(names.b) > 0 && !names.bad {
			kind := names.u8()
			name := names.take(names.u16())
			if names.bad {
				break
			}
			if kind == 0 {
				n, ok := NormalName(string(name))
				if !ok {
					return "", errHello
				}
				return n, nil
			}
		}
		return "", errHello
	}
	return "", errNoSNI
}

// ReadRequestHead reads an HTTP/1 request head (through the blank line,
// at most MaxHeadBytes) and returns the bytes read and the Host header's
// name (lower case, port removed).
func ReadRequestHead(r io.Reader) (raw []byte, host string, err error) {
	buf := make([]byte, 0, 1024)
	tmp := make([]byte, 1024)
	for {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			host, err := headHost(buf[:i])
			return buf, host, err
		}
		if len(buf) >= MaxHeadBytes {
			return buf, "", errTooLarge
		}
		n, err := r.Read(tmp[:min(len(tmp), MaxHeadBytes-len(buf))])
		buf = append(buf, tmp[:n]...)
		if err != nil {
			if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
				host, herr := headHost(buf[:i])
				return buf, host, herr
			}
			return buf, "", err
		}
	}
}

// headHost checks the request line and returns the one Host header's name.
func headHost(head []byte) (string, error) {
	lines := strings.Split(string(head), "\r\n")
	f := strings.Fields(lines[0])
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		return "", errNotHTTP
	}
	host := ""
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return "", errNotHTTP
		}
		if !strings.EqualFold(strings.TrimSpace(k), "host") {
			continue
		}
		if host != "" {
			return "", errNotHTTP // two Host headers: ambiguous
		}
		host = strings.TrimSpace(v)
	}
	if host == "" {
		return "", errNoHost
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	n, ok := NormalName(host)
	if !ok {
		return "", errNotHTTP
	}
	return n, nil
}
