package secrets

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"banger/internal/egress"
)

// TestBearerSubstituted: the guest's bearer placeholder reaches the bound
// upstream as the real value, over HTTP/1.1 and over HTTP/2 on both sides,
// without Accept-Encoding; the guest never sees the value.
func TestBearerSubstituted(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
				fmt.Fprint(w, "ok ", req.Proto)
			}, bearer())
			c := r.client(t, h2)
			resp, body := get(t, c, "https://example.com/v1/x?q=1",
				"Authorization", "Bearer "+tokenPH, "Accept-Encoding", "gzip")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			reqs := r.rec.all()
			if len(reqs) != 1 {
				t.Fatalf("upstream got %d requests", len(reqs))
			}
			got := reqs[0]
			if a := got.Header.Get("Authorization"); a != "Bearer "+token {
				t.Errorf("upstream Authorization %q", a)
			}
			if got.Header.Get("Accept-Encoding") != "" {
				t.Errorf("Accept-Encoding sent upstream: %q", got.Header.Get("Accept-Encoding"))
			}
			if got.Host != "example.com" || got.URL.RequestURI() != "/v1/x?q=1" {
				t.Errorf("upstream host %q uri %q", got.Host, got.URL.RequestURI())
			}
			wantProto := "HTTP/1.1"
			if h2 {
				wantProto = "HTTP/2.0"
			}
			if resp.Proto != wantProto {
				t.Errorf("guest spoke %s", resp.Proto)
			}
			if got.Proto != "HTTP/2.0" {
				t.Errorf("upstream spoke %s, want h2 (offered)", got.Proto)
			}
			if strings.Contains(body, token) || len(r.denied()) != 0 {
				t.Errorf("body %q denials %v", body, r.denied())
			}
			// The hook returns once the guest closes its connection.
			c.CloseIdleConnections()
			select {
			case took := <-r.hooked:
				if !took {
					t.Error("hook declined a bound host")
				}
			case <-time.After(5 * time.Second):
				t.Error("hook still serving after the guest closed")
			}
		})
	}
}

// TestHeaderTemplate: with Header set, only that header is substituted, and
// its whole value becomes the template; the placeholder elsewhere is left.
func TestHeaderTemplate(t *testing.T) {
	s := bearer()
	s.Header = "X-Api-Key: key={}"
	r := newRig(t, nil, s)
	resp, _ := get(t, r.client(t, false), "https://example.com/",
		"x-api-key", "whatever "+tokenPH, "X-Other", tokenPH)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := r.rec.all()[0]
	if v := got.Header.Get("X-Api-Key"); v != "key="+token {
		t.Errorf("X-Api-Key %q", v)
	}
	if v := got.Header.Get("X-Other"); v != tokenPH {
		t.Errorf("X-Other %q, want the placeholder untouched", v)
	}
}

// TestBasicAuth: git-style Basic credentials user:placeholder get the real
// password; the echoed header comes back with the placeholder.
func TestBasicAuth(t *testing.T) {
	s := bearer()
	s.BasicUser = "x-access-token"
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("X-Echo", req.Header.Get("Authorization"))
		fmt.Fprint(w, req.Header.Get("Authorization"))
	}, s)
	c := r.client(t, false)
	for _, user := range []string{"x-access-token", "oauth2"} {
		enc := func(p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+p)) }
		resp, body := get(t, c, "https://example.com/org/repo.git/info/refs?service=git-upload-pack", "Authorization", enc(tokenPH))
		reqs := r.rec.all()
		if a := reqs[len(reqs)-1].Header.Get("Authorization"); a != enc(token) {
			t.Errorf("%s: upstream Authorization %q", user, a)
		}
		if e := resp.Header.Get("X-Echo"); e != enc(tokenPH) {
			t.Errorf("%s: echoed header %q, want the placeholder's encoding", user, e)
		}
		if body != enc(tokenPH) {
			t.Errorf("%s: echoed body %q", user, body)
		}
	}
}

// TestNotBound: a host no secret is bound to is left to the proxy.
func TestNotBound(t *testing.T) {
	r := newRig(t, nil, bearer())
	g, h := pair(t)
	defer g.Close()
	defer h.Close()
	for _, c := range []*egress.Conn{
		{VMID: "vm1", Client: h, Name: "other.test", Port: 443, TLS: true},
		{VMID: "vm1", Client: h, Name: "example.com", Port: 80, TLS: false, Head: []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")},
		{VMID: "vm1", Client: h, Name: "", Port: 443, TLS: true},
	} {
		if r.sub.Hook(context.Background(), c) {
			t.Errorf("Hook took %s:%d", c.Name, c.Port)
		}
	}
	r.subs = nil
	if r.sub.Hook(context.Background(), &egress.Conn{VMID: "vm1", Client: h, Name: "example.com", Port: 443, TLS: true}) {
		t.Error("Hook took a connection of a VM without secrets")
	}
	if len(r.denied()) != 0 {
		t.Errorf("denials %v", r.denied())
	}
}

// TestPlaceholderToWrongHost: on a bound host, another secret's placeholder
// is not substituted and is recorded; plain HTTP to an unbound host carrying
// a placeholder (even inside Basic credentials) is recorded and spliced.
func TestPlaceholderToWrongHost(t *testing.T) {
	other := Sub{Name: "npm", Placeholder: "banger-secret-npm-aaaaaaaaaaaaaaaaaaaaaaaa", Value: []byte("npm_SECRET"), Hosts: []string{"registry.npmjs.org"}}
	r := newRig(t, nil, bearer(), other)
	get(t, r.client(t, false), "https://example.com/", "Authorization", "Bearer "+tokenPH, "X-Npm", other.Placeholder)
	got := r.rec.all()[0]
	if got.Header.Get("X-Npm") != other.Placeholder || got.Header.Get("Authorization") != "Bearer "+token {
		t.Errorf("upstream got X-Npm %q Authorization %q", got.Header.Get("X-Npm"), got.Header.Get("Authorization"))
	}
	d := r.denied()
	if len(d) != 1 || d[0].Via != "secrets" || d[0].Name != "example.com" || d[0].Reason != "placeholder of secret npm sent to unbound host" {
		t.Fatalf("denials %+v", d)
	}

	g, h := pair(t)
	defer g.Close()
	defer h.Close()
	basic := base64.StdEncoding.EncodeToString([]byte("me:" + other.Placeholder))
	for _, head := range []string{
		"GET /?t=" + other.Placeholder + " HTTP/1.1\r\nHost: evil.test\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: evil.test\r\nAuthorization: Basic " + basic + "\r\n\r\n",
	} {
		if r.sub.Hook(context.Background(), &egress.Conn{VMID: "vm1", Client: h, Name: "evil.test", Port: 80, Head: []byte(head)}) {
			t.Error("Hook took plain HTTP to an unbound host")
		}
	}
	d = r.denied()
	if len(d) != 3 || d[2].Name != "evil.test" || !strings.Contains(d[2].Reason, "secret npm sent to unbound host") {
		t.Errorf("denials %+v", d)
	}
}

// TestMisdirected: a request whose Host is not the connection's name is
// refused (421) and never forwarded with a secret (domain fronting).
func TestMisdirected(t *testing.T) {
	r := newRig(t, nil, bearer())
	req, _ := http.NewRequest("GET", "https://example.com/", nil)
	req.Host = "attacker.example.net"
	req.Header.Set("Authorization", "Bearer "+tokenPH)
	resp, err := r.client(t, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest || len(r.rec.all()) != 0 {
		t.Errorf("status %d, upstream got %d requests", resp.StatusCode, len(r.rec.all()))
	}
}

// TestUntrustedUpstream: an upstream whose certificate does not verify
// gets nothing (not even the request) and the guest gets a 502.
func TestUntrustedUpstream(t *testing.T) {
	r := newRig(t, nil, bearer())
	r.sub.RootCAs = x509.NewCertPool()
	resp, body := get(t, r.client(t, false), "https://example.com/", "Authorization", "Bearer "+tokenPH)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "certificate") {
		t.Errorf("status %d body %q", resp.StatusCode, body)
	}
	if len(r.rec.all()) != 0 || strings.Contains(body, token) {
		t.Errorf("upstream got %d requests; body %q", len(r.rec.all()), body)
	}
}

// TestPlainHTTP: a PlainHTTP secret's host asked over http:// is served by
// the hook and sent upstream over verified TLS to port 443, substituted; a
// secret without PlainHTTP on the same host is not substituted there.
func TestPlainHTTP(t *testing.T) {
	s := bearer()
	s.PlainHTTP = true
	tls := Sub{Name: "tlsonly", Placeholder: "banger-secret-tlsonly-bbbbbbbbbbbbbbbbbbbbbbbb", Value: []byte("V2"), Hosts: []string{"example.com"}}
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) { fmt.Fprint(w, req.TLS != nil, " ", token) }, s, tls)
	resp, body := get(t, r.client(t, false), "http://example.com/v1/models", "Authorization", "Bearer "+tokenPH, "X-T", tls.Placeholder)
	if resp.StatusCode != 200 || body != "true "+tokenPH {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	got := r.rec.all()[0]
	if got.Header.Get("Authorization") != "Bearer "+token || got.Header.Get("X-T") != tls.Placeholder || got.URL.Path != "/v1/models" {
		t.Errorf("upstream got %v %s", got.Header, got.URL)
	}
	if d := r.denied(); len(d) != 1 || d[0].Reason != "placeholder of secret tlsonly sent over plain HTTP (not substituted)" {
		t.Errorf("denials %+v", d)
	}
}

// TestStreamingAndUpgrade: an event stream arrives event by event (nothing
// held back), and a 101 upgrade carries bytes both ways.
func TestStreamingAndUpgrade(t *testing.T) {
	next := make(chan struct{})
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Upgrade") == "websocket" {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			brw.Flush()
			line, _ := brw.ReadString('\n')
			conn.Write([]byte("echo:" + line))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "data: two\n\n")
	}, bearer())
	c := r.client(t, false)
	req, _ := http.NewRequest("GET", "https://example.com/events", nil)
	req.Header.Set("Authorization", "Bearer "+tokenPH)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	done := make(chan string)
	go func() {
		l, _ := br.ReadString('\n')
		br.ReadString('\n')
		done <- l
	}()
	select {
	case l := <-done:
		if l != "data: one\n" {
			t.Errorf("first event %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first event held back")
	}
	close(next)
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if string(rest) != "data: two\n\n" {
		t.Errorf("rest %q", rest)
	}

	req, _ = http.NewRequest("GET", "https://example.com/up", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err = (&http.Client{Transport: c.Transport}).Do(req) // no Timeout: the body stays writable
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade status %d", resp.StatusCode)
	}
	rw := resp.Body.(io.ReadWriteCloser)
	defer rw.Close()
	io.WriteString(rw, "hello\n")
	got, _ := bufio.NewReader(rw).ReadString('\n')
	if got != "echo:hello\n" {
		t.Errorf("upgraded echo %q", got)
	}
}

// TestHeaderBound: a guest's request head beyond MaxHeaderBytes is refused
// (HTTP/1.1: 431; HTTP/2: the request fails) and never forwarded.
func TestHeaderBound(t *testing.T) {
	r := newRig(t, nil, bearer())
	big := strings.Repeat("a", MaxHeaderBytes+8<<10) // net/http allows 4 KiB of slack
	for _, h2 := range []bool{false, true} {
		req, _ := http.NewRequest("GET", "https://example.com/", nil)
		req.Header.Set("X-Big", big)
		resp, err := r.client(t, h2).Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("h2=%v: status %d", h2, resp.StatusCode)
			}
		}
	}
	if n := len(r.rec.all()); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
}

// TestBoundTo: exact names match themselves only; *.domain matches names
// below domain, not domain itself; case and a trailing dot don't matter.
func TestBoundTo(t *testing.T) {
	s := Sub{Hosts: []string{"API.example.com.", "*.githubusercontent.com"}}
	for host, want := range map[string]bool{
		"api.example.com": true, "example.com": false, "x.api.example.com": false,
		"raw.githubusercontent.com": true, "a.b.githubusercontent.com": true,
		"githubusercontent.com": false, "evilgithubusercontent.com": false,
	} {
		if got := s.boundTo(host); got != want {
			t.Errorf("%s: %v, want %v", host, got, want)
		}
	}
}
