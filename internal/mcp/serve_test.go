package mcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func TestHTTPNeedsTheToken(t *testing.T) {
	d := newFakeDaemon()
	const token = "0123456789abcdef-secret"
	srv := httptest.NewServer(HTTPHandler(NewServer(Options{Daemon: d, Guests: localGuests{d}}), token))
	defer srv.Close()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	for _, auth := range []string{"", "Bearer wrong-token-wrong-token", "Basic " + token} {
		req, _ := http.NewRequest("POST", srv.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, resp.StatusCode)
		}
	}
	// The SDK's client with the token gets through.
	tr := &mcp.StreamableClientTransport{Endpoint: srv.URL + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{token, http.DefaultTransport}}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil).Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var r VMListResult
	call(t, cs, "vm_list", map[string]any{}, &r)
	if len(r.VMs) != 1 || r.VMs[0].Name != "dev" {
		t.Errorf("vm_list over HTTP: %+v", r)
	}
}

func TestReadTokenAndListen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tok")
	os.WriteFile(p, []byte("0123456789abcdefXYZ\n"), 0o600)
	if tok, err := ReadToken(p); err != nil || tok != "0123456789abcdefXYZ" {
		t.Errorf("ReadToken: %q %v", tok, err)
	}
	os.Chmod(p, 0o644)
	if _, err := ReadToken(p); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("world-readable token file accepted: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "short"), []byte("abc"), 0o600)
	if _, err := ReadToken(filepath.Join(dir, "short")); err == nil {
		t.Error("short token accepted")
	}
	if _, err := ReadToken(""); err == nil {
		t.Error("no token file accepted")
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "example.com:80", "nonsense"} {
		if l, err := ListenLoopback(addr); err == nil {
			l.Close()
			t.Errorf("ListenLoopback(%q) accepted", addr)
		}
	}
	l, err := ListenLoopback("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}
