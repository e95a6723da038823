package secrets

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"banger/internal/egress"
	"banger/internal/model"
)

const (
	token   = "ghp_REALVALUE0123456789abcdefXYZ"
	tokenPH = "banger-secret-gh-0123456789abcdef01234567"
)

// recorder is an upstream that keeps what it receives.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) add(req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
}

func (r *recorder) all() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.reqs...)
}

// rig is an upstream (httptest, TLS with its own CA, names example.com and
// *.example.com), a VM CA, a Substituter trusting the upstream's CA and a
// guest client whose connections go through the substituter's Hook the way
// the egress proxy hands them over.
type rig struct {
	t        *testing.T
	up       *httptest.Server
	rec      *recorder
	ca       *CA
	sub      *Substituter
	subs     []Sub
	mu       sync.Mutex
	denials  []model.EgressDenial
	hooked   chan bool
	upDialed int
}

func newRig(t testing.TB, handler http.HandlerFunc, subs ...Sub) *rig {
	tt, _ := t.(*testing.T)
	r := &rig{t: tt, rec: &recorder{}, subs: subs, hooked: make(chan bool, 100)}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.rec.add(req)
		if handler != nil {
			handler(w, req)
		}
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close)
	r.up = up
	ca, err := LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	r.ca = ca
	pool := x509.NewCertPool()
	pool.AddCert(up.Certificate())
	r.sub = &Substituter{
		Subs:    func(string) []Sub { return r.subs },
		CA:      func(string) (Minter, error) { return ca, nil },
		RootCAs: pool,
		Deny: func(_ string, d model.EgressDenial) {
			r.mu.Lock()
			r.denials = append(r.denials, d)
			r.mu.Unlock()
		},
	}
	return r
}

func (r *rig) dialUp(ctx context.Context) (net.Conn, error) {
	r.mu.Lock()
	r.upDialed++
	r.mu.Unlock()
	return (&net.Dialer{}).DialContext(ctx, "tcp", r.up.Listener.Addr().String())
}

func (r *rig) denied() []model.EgressDenial {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]model.EgressDenial(nil), r.denials...)
}

// pair is a connected loopback TCP pair.
func pair(t testing.TB) (guest, host net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	g, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return g, <-ch
}

// guestDial plays the egress proxy: it reads the guest's first bytes,
// offers the connection to the Hook and, when the Hook declines, splices
// it to the upstream.
func (r *rig) guestDial(t testing.TB, isTLS bool) func(ctx context.Context, _, _ string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		g, h := pair(t)
		go func() {
			var head []byte
			var name string
			var err error
			port := uint16(80)
			if isTLS {
				port = 443
				head, name, err = egress.ReadClientHello(h)
			} else {
				head, name, err = egress.ReadRequestHead(h)
			}
			if err != nil {
				h.Close()
				return
			}
			c := &egress.Conn{VMID: "vm1", Client: h, Head: head, Name: name, Port: port, TLS: isTLS,
				Dial: r.dialUp,
				DialPort: func(ctx context.Context, port uint16) (net.Conn, error) {
					if port != 443 {
						return nil, fmt.Errorf("test dials only 443, not %d", port)
					}
					return r.dialUp(ctx)
				}}
			took := r.sub.Hook(context.Background(), c)
			r.hooked <- took
			if !took {
				up, err := r.dialUp(context.Background())
				if err != nil {
					h.Close()
					return
				}
				up.Write(head)
				go io.Copy(up, h)
				io.Copy(h, up)
				h.Close()
				up.Close()
			}
		}()
		return g, nil
	}
}

// client is the guest's HTTP client: it trusts the VM CA only; h2 when asked.
func (r *rig) client(t testing.TB, h2 bool) *http.Client {
	pool := x509.NewCertPool()
	b, _ := pem.Decode(r.ca.CertPEM())
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(c)
	tr := &http.Transport{
		DialContext:       r.guestDial(t, false),
		DialTLSContext:    nil,
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	// https: the transport dials (DialContext) then does TLS itself.
	plainDial := r.guestDial(t, false)
	tlsDial := r.guestDial(t, true)
	tr.DialContext = func(ctx context.Context, n, a string) (net.Conn, error) {
		if strings.HasSuffix(a, ":443") {
			return tlsDial(ctx, n, a)
		}
		return plainDial(ctx, n, a)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func bearer() Sub {
	return Sub{Name: "gh", Placeholder: tokenPH, Value: []byte(token), Hosts: []string{"example.com"}}
}

func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp, string(body)
}
