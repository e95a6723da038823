package oci

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// isLoopbackHost reports whether host (no port) is one of the loopback names
// for which plain HTTP is allowed.
func isLoopbackHost(host string) bool {
	host = strings.Trim(host, "[]")
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// parseRef parses an image reference. Registries on localhost, 127.0.0.1 or
// [::1] may be plain HTTP; every other registry must speak HTTPS.
func parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	host := r.Context().RegistryStr()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if isLoopbackHost(host) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// httpsOnly refuses plain-HTTP requests to hosts that are not loopback
// (ggcr would otherwise fall back to HTTP for private-network addresses).
type httpsOnly struct {
	next http.RoundTripper
}

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !isLoopbackHost(req.URL.Hostname()) {
		return nil, fmt.Errorf("refusing plain HTTP to %s: only localhost registries may use HTTP", req.URL.Host)
	}
	return t.next.RoundTrip(req)
}
