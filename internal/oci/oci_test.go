package oci

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

type okTransport struct{ calls int }

func (o *okTransport) RoundTrip(*http.Request) (*http.Response, error) {
	o.calls++
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(""))}, nil
}

func TestHTTPSOnly(t *testing.T) {
	next := &okTransport{}
	rt := httpsOnly{next: next}
	for url, allowed := range map[string]bool{
		"https://registry.example/v2/": true,
		"http://127.0.0.1:5000/v2/":    true,
		"http://localhost:5000/v2/":    true,
		"http://[::1]:5000/v2/":        true,
		"http://10.0.0.7:5000/v2/":     false,
		"http://registry.example/v2/":  false,
		"http://127.0.0.2/v2/":         false,
	} {
		req, _ := http.NewRequest("GET", url, nil)
		_, err := rt.RoundTrip(req)
		if (err == nil) != allowed {
			t.Errorf("%s: err = %v, allowed = %v", url, err, allowed)
		}
	}
	r, err := parseRef("127.0.0.1:5000/a/b:1")
	if err != nil || r.Context().Scheme() != "http" {
		t.Errorf("loopback ref: %v %v", r, err)
	}
	r, err = parseRef("10.1.2.3:5000/a/b:1")
	if err != nil {
		t.Fatal(err)
	}
	// ggcr would allow HTTP here; the transport refuses it.
	req, _ := http.NewRequest("GET", r.Context().Scheme()+"://10.1.2.3:5000/v2/", nil)
	if r.Context().Scheme() == "http" {
		if _, err := rt.RoundTrip(req); err == nil {
			t.Error("private-network HTTP allowed")
		}
	}
}

func TestDockerConfigKeychain(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"auths":{
		"https://index.docker.io/v1/":{"auth":"aHViOnB3"},
		"registry.example:5000":{"username":"u","password":"p"},
		"https://tok.example":{"identitytoken":"tkn"}},
		"credsStore":"desktop"}`), 0o600)
	kc, err := Auth{DockerConfig: cfg}.keychain()
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]authn.AuthConfig{
		"alpine:3":                    {Username: "hub", Password: "pw"},
		"registry.example:5000/x/y:1": {Username: "u", Password: "p"},
		"tok.example/x:1":             {IdentityToken: "tkn"},
		"other.example/x:1":           {},
	} {
		r, _ := name.ParseReference(ref)
		a, err := kc.Resolve(r.Context())
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if *got != want {
			t.Errorf("%s: %+v, want %+v", ref, *got, want)
		}
	}
	if _, err := (Auth{DockerConfig: filepath.Join(dir, "missing.json")}).keychain(); err != nil {
		t.Errorf("missing config should mean anonymous: %v", err)
	}
	os.WriteFile(cfg, []byte(`{"auths":{"h":{"auth":"!!!"}}}`), 0o600)
	if _, err := (Auth{DockerConfig: cfg}).keychain(); err == nil {
		t.Error("bad base64 accepted")
	}
}

func TestLayerOpenDetectsCompression(t *testing.T) {
	payload := []byte("tar bytes stand-in")
	var gz, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(payload)
	zw.Close()
	enc, _ := zstd.NewWriter(&zs)
	enc.Write(payload)
	enc.Close()
	for kind, data := range map[string][]byte{"plain": payload, "gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		p := filepath.Join(t.TempDir(), kind)
		os.WriteFile(p, data, 0o644)
		rc, err := Layer{Path: p, Digest: kind}.Open()
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, payload) {
			t.Errorf("%s: %q, %v", kind, got, err)
		}
	}
}

func TestBlobCacheVerifies(t *testing.T) {
	c := &blobCache{dir: t.TempDir()}
	data := []byte("some blob")
	sum := sha256.Sum256(data)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if err := c.write(h, int64(len(data)), bytes.NewReader([]byte("some blub")), nil); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("corrupt content: %v", err)
	}
	if err := c.write(h, 100, bytes.NewReader(data), nil); err == nil {
		t.Error("short content accepted")
	}
	if c.has(h) {
		t.Error("bad content was cached")
	}
	if err := c.write(v1.Hash{Algorithm: "sha256", Hex: "../../etc"}, -1, bytes.NewReader(data), nil); err == nil {
		t.Error("malformed digest accepted")
	}
	var last int64
	if err := c.write(h, -1, bytes.NewReader(data), func(n int64) { last = n }); err != nil {
		t.Fatal(err)
	}
	if !c.has(h) || last != int64(len(data)) {
		t.Errorf("cached %v, counted %d", c.has(h), last)
	}
	entries, _ := os.ReadDir(filepath.Join(c.dir, "sha256"))
	if len(entries) != 1 {
		t.Errorf("cache dir holds %d entries, want 1 (no temp files)", len(entries))
	}
}
