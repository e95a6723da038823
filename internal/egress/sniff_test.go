package egress

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// clientHello returns the bytes Go's TLS client sends first for sni.
func clientHello(t *testing.T, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: sni == ""})
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Handshake()
		a.Close()
	}()
	b.SetDeadline(time.Now().Add(2 * time.Second))
	var hdr [5]byte
	if _, err := io.ReadFull(b, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	b.Close()
	return append(hdr[:], body...)
}

func TestReadClientHello(t *testing.T) {
	hello := clientHello(t, "Registry.NPMJS.org")
	raw, sni, err := ReadClientHello(bytes.NewReader(append(hello, "rest"...)))
	if err != nil || sni != "registry.npmjs.org" || !bytes.Equal(raw, hello) {
		t.Fatalf("sni %q err %v, raw is the hello: %v", sni, err, bytes.Equal(raw, hello))
	}
	// The same handshake split over two records.
	hs := hello[5:]
	var split []byte
	for _, part := range [][]byte{hs[:10], hs[10:]} {
		split = append(split, 22, 3, 1, byte(len(part)>>8), byte(len(part)))
		split = append(split, part...)
	}
	if _, sni, err := ReadClientHello(bytes.NewReader(split)); err != nil || sni != "registry.npmjs.org" {
		t.Errorf("split records: sni %q err %v", sni, err)
	}
	if _, _, err := ReadClientHello(bytes.NewReader(clientHello(t, ""))); !errors.Is(err, errNoSNI) {
		t.Errorf("hello without SNI: %v", err)
	}
}

func TestReadClientHelloHostile(t *testing.T) {
	hello := clientHello(t, "github.com")
	cases := map[string][]byte{
		"http":            []byte("GET / HTTP/1.1\r\nHost: github.com\r\n\r\n"),
		"empty":           nil,
		"zero record":     {22, 3, 1, 0, 0},
		"huge record":     {22, 3, 1, 0xff, 0xff},
		"not hello":       {22, 3, 1, 0, 4, 2, 0, 0, 0},
		"huge handshake":  {22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff},
		"truncated":       hello[:len(hello)-7],
		"alert":           {21, 3, 1, 0, 2, 2, 40},
		"short body":      {22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3},
		"bad name length": corruptSNILength(t, hello),
	}
	for name, in := range cases {
		if _, sni, err := ReadClientHello(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: accepted, sni %q", name, sni)
		}
	}
	// Endless tiny records never exceed the bound.
	var many []byte
	many = append(many, 22, 3, 1, 0, 4, 1, 0, 0x3f, 0xf0) // claims almost 16 KiB
	for i := 0; i < 20000; i++ {
		many = append(many, 22, 3, 1, 0, 1, 0)
	}
	if _, _, err := ReadClientHello(bytes.NewReader(many)); err == nil {
		t.Error("records beyond the bound accepted")
	}
	// A name that is not a host name.
	bad := bytes.Replace(hello, []byte("github.com"), []byte("git\x1bub.com"), 1)
	if _, sni, err := ReadClientHello(bytes.NewReader(bad)); err == nil {
		t.Errorf("control character in SNI accepted: %q", sni)
	}
}

// corruptSNILength makes the server name's length run past its extension.
func corruptSNILength(t *testing.T, hello []byte) []byte {
	t.Helper()
	out := bytes.Clone(hello)
	i := bytes.Index(out, []byte("github.com"))
	if i < 2 {
		t.Fatal("no name in hello")
	}
	binary.BigEndian.PutUint16(out[i-2:], 0x4000)
	return out
}

func TestReadRequestHead(t *testing.T) {
	good := map[string]string{
		"GET / HTTP/1.1\r\nHost: GitHub.com\r\nAccept: */*\r\n\r\nbody":          "github.com",
		"GET / HTTP/1.1\r\nhost:github.com:8080\r\n\r\n":                         "github.com",
		"POST /x HTTP/1.0\r\nUser-Agent: a\r\nHOST: registry.npmjs.org.\r\n\r\n": "registry.npmjs.org",
	}
	for in, want := range good {
		raw, host, err := ReadRequestHead(strings.NewReader(in))
		if err != nil || host != want || !strings.HasPrefix(in, string(raw[:len(raw)-min(len(raw), 4)])) {
			t.Errorf("%q: host %q err %v", in, host, err)
		}
	}
	bad := []string{
		"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a b.com\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: \x1b[31m.com\r\n\r\n",
		"GET / SPDY/3\r\nHost: a.com\r\n\r\n",
		"\x16\x03\x01\x00\x05hello",
		"GET / HTTP/1.1\r\nHost: a.com\r\n",
		"GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeadBytes) + "\r\nHost: a.com\r\n\r\n",
		"GET / HTTP/1.1\r\nbroken line\r\nHost: a.com\r\n\r\n",
	}
	for _, in := range bad {
		if _, host, err := ReadRequestHead(strings.NewReader(in)); err == nil {
			t.Errorf("%.60q: accepted, host %q", in, host)
		}
	}
}
