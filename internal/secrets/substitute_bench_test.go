package secrets

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"sort"
	"testing"
	"time"
)

// BenchmarkSubstitute times a small GET with a bearer placeholder through
// the Hook (guest TLS terminated, substituted, forwarded over TLS, body
// scrubbed) against the same GET straight to the upstream, both on kept-
// alive HTTP/1.1 connections; it reports the medians and their ratio.
func BenchmarkSubstitute(b *testing.B) {
	r := newRig(b, func(w http.ResponseWriter, req *http.Request) {
		io.WriteString(w, `{"ok":true,"model":"x","usage":{"in":12,"out":34}}`)
	}, bearer())
	via := r.client(b, false)
	pool := x509.NewCertPool()
	pool.AddCert(r.up.Certificate())
	direct := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	directURL := "https://" + r.up.Listener.Addr().String() + "/v1"
	do := func(c *http.Client, url, auth string) time.Duration {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", auth)
		t0 := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t0)
	}
	do(via, "https://example.com/v1", "Bearer "+tokenPH) // warm both connections
	do(direct, directURL, "Bearer "+token)
	var dv, dd []time.Duration
	b.ResetTimer()
	for b.Loop() {
		dv = append(dv, do(via, "https://example.com/v1", "Bearer "+tokenPH))
		dd = append(dd, do(direct, directURL, "Bearer "+token))
	}
	med := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	mv, md := med(dv), med(dd)
	b.ReportMetric(float64(mv.Microseconds()), "µs-hook")
	b.ReportMetric(float64(md.Microseconds()), "µs-direct")
	b.ReportMetric(float64(mv)/float64(md), "ratio")
}
