package secrets

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestScrubTrailersWithoutBody: an upstream answering 204 or 304 with
// trailers (HTTP/2 allows it) gets them scrubbed like any other's.
func TestScrubTrailersWithoutBody(t *testing.T) {
	for _, code := range []int{http.StatusNoContent, http.StatusNotModified} {
		r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Trailer", "X-T")
			w.WriteHeader(code)
			w.Header().Set("X-T", "echo "+token)
		}, bearer())
		req, _ := http.NewRequest("GET", "https://example.com/", nil)
		req.Header.Set("Authorization", "Bearer "+tokenPH)
		resp, err := r.client(t, true).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Fatalf("status %d, want %d", resp.StatusCode, code)
		}
		if got := resp.Trailer.Get("X-T"); got != "echo "+tokenPH {
			t.Errorf("%d: trailer X-T = %q, want the placeholder", code, got)
		}
	}
}

// TestScrubEncodedEchoes: a value a server echoes percent-encoded,
// JSON-escaped (quoted by Go's %q too) or in base64 is scrubbed as well.
func TestScrubEncodedEchoes(t *testing.T) {
	const val = `t0k/en+"q\u<&>=é`
	const ph = "banger-secret-x-0123456789abcdef01234567"
	rep := &replacer{}
	rep.addValue(val, ph)
	js, _ := json.Marshal(val)
	forms := map[string]string{
		"raw":       val,
		"query":     url.QueryEscape(val),
		"path":      url.PathEscape(val),
		"json":      string(js[1 : len(js)-1]),
		"quoted":    fmt.Sprintf("%q", val)[1 : len(fmt.Sprintf("%q", val))-1],
		"base64":    base64.StdEncoding.EncodeToString([]byte(val)),
		"base64url": base64.URLEncoding.EncodeToString([]byte(val)),
	}
	for name, form := range forms {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(val)
		noHTML := strings.TrimSpace(b.String())
		for _, in := range []string{"<" + form + ">", "<" + noHTML[1:len(noHTML)-1] + ">"} {
			out := rep.String(in)
			for _, f := range forms {
				if strings.Contains(out, f) {
					t.Errorf("%s: %q scrubbed to %q still holds %q", name, in, out, f)
				}
			}
		}
	}
}

// TestSubstitutionBounded: a guest repeating a placeholder cannot make the
// host build and send a head many times a large value's size: the request
// is refused (431) and nothing goes upstream; one substitution passes.
func TestSubstitutionBounded(t *testing.T) {
	big := bearer()
	big.Value = []byte(strings.Repeat("v", 32<<10))
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {}, big)
	c := r.client(t, false)
	req, _ := http.NewRequest("GET", "https://example.com/", nil)
	for i := range 20 {
		req.Header.Set(fmt.Sprintf("X-Echo-%d", i), tokenPH)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || len(r.rec.all()) != 0 {
		t.Fatalf("20 placeholders: status %d, upstream got %d requests", resp.StatusCode, len(r.rec.all()))
	}
	resp, _ = get(t, c, "https://example.com/", "Authorization", "Bearer "+tokenPH)
	if resp.StatusCode != http.StatusOK || len(r.rec.all()) != 1 || r.rec.all()[0].Header.Get("Authorization") != "Bearer "+string(big.Value) {
		t.Fatalf("one placeholder: status %d, upstream got %d requests", resp.StatusCode, len(r.rec.all()))
	}
}
