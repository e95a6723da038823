package secrets

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
)

// TestScrubEcho: the value echoed in headers (103 Early Hints included),
// trailers and a body written
// in pieces that split it comes back as the placeholder; a value-free
// body keeps its bytes.
func TestScrubEcho(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Link", "</"+token+">; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("X-Echo", "got "+token)
		w.Header().Set("Trailer", "X-T")
		w.Header().Set("Content-Length", fmt.Sprint(len(token)*3+9))
		f := w.(http.Flusher)
		msg := "a" + token + "b" + token + "c" + token + "dddddd"
		prev := 0
		for _, cut := range []int{5, 17, 40, 41, len(msg)} {
			io.WriteString(w, msg[prev:cut])
			f.Flush()
			prev = cut
		}
		w.Header().Set("X-T", token)
	}, bearer())
	for _, h2 := range []bool{false, true} {
		var hints []string
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, h.Get("Link"))
				return nil
			}})
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://example.com/echo", nil)
		req.Header.Set("Authorization", "Bearer "+tokenPH)
		resp, err := r.client(t, h2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		body := string(b)
		if len(hints) != 1 || hints[0] != "</"+tokenPH+">; rel=preload" {
			t.Errorf("h2=%v: early hints %q", h2, hints)
		}
		want := "a" + tokenPH + "b" + tokenPH + "c" + tokenPH + "dddddd"
		if body != want {
			t.Errorf("h2=%v: body %q, want %q", h2, body, want)
		}
		if e := resp.Header.Get("X-Echo"); e != "got "+tokenPH {
			t.Errorf("h2=%v: header %q", h2, e)
		}
		if tr := resp.Trailer.Get("X-T"); tr != tokenPH {
			t.Errorf("h2=%v: trailer %q", h2, tr)
		}
	}
}

// TestScrubReader splits a stream at every position and with tiny reads.
func TestScrubReader(t *testing.T) {
	rep := &replacer{}
	rep.add("SECRET", "ph")
	rep.add("SECRETLONGER", "PH2")
	rep.addBasic("u", "SECRET", "ph")
	in := "xxSECRETyySECRETLONGERzzSESECRETSECRET" + base64.StdEncoding.EncodeToString([]byte("u:SECRET")) + "SECRE"
	want := "xxphyyPH2zzSEphph" + base64.StdEncoding.EncodeToString([]byte("u:ph")) + "SECRE"
	for cut := 0; cut <= len(in); cut++ {
		for _, rd := range []int{1, 3, 1000} {
			src := io.NopCloser(io.MultiReader(strings.NewReader(in[:cut]), strings.NewReader(in[cut:])))
			out, err := io.ReadAll(&smallReader{newScrubReader(src, rep, nil), rd})
			if err != nil || string(out) != want {
				t.Fatalf("cut %d read %d: %q %v, want %q", cut, rd, out, err, want)
			}
		}
	}
	if got := rep.String("a SECRET b"); got != "a ph b" {
		t.Errorf("String: %q", got)
	}
}

type smallReader struct {
	r io.Reader
	n int
}

func (s *smallReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), s.n)]) }

// TestScrubGzip: an upstream that compresses although not asked to is
// decompressed so that the echo is scrubbed.
func TestScrubGzip(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, "token="+token)
		zw.Close()
	}, bearer())
	resp, body := get(t, r.client(t, false), "https://example.com/", "Authorization", "Bearer "+tokenPH)
	if body != "token="+tokenPH || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("body %q encoding %q", body, resp.Header.Get("Content-Encoding"))
	}
}
