package secrets

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"banger/internal/egress"
	"banger/internal/model"
)

// Bounds on what a guest sends through substitution, and on upstreams.
const (
	MaxHeaderBytes      = 64 << 10 // a guest's request head
	maxUpstreamHeader   = 1 << 20  // an upstream's response head
	ReadHeaderTimeout   = 30 * time.Second
	IdleTimeout         = 2 * time.Minute
	HandshakeTimeout    = 10 * time.Second
	maxConcurrentStream = 100 // HTTP/2 streams per guest connection
	maxUpstreamConns    = 32  // upstream connections per guest connection (more requests wait)
)

// Sub is one secret bound to a VM, as the substituter uses it.
type Sub struct {
	Name        string   // secret name
	Placeholder string   // what the guest holds
	Value       []byte   // the real value (host only)
	Hosts       []string // names it is bound to: exact "api.example.com" or "*.example.com"
	// Header, e.g. "Authorization: Bearer {}", restricts substitution to
	// that header: when it carries the placeholder, its whole value becomes
	// the template with {} = value. "" = the placeholder is replaced in any
	// request header value.
	Header string
	// BasicUser turns on Basic-auth mode: Authorization: Basic
	// b64(user:placeholder) is decoded, the password substituted and the
	// pair encoded again (git over HTTPS); "" = off.
	BasicUser string
	// PlainHTTP: the guest's http://HOST/ requests (port 80) to a bound host
	// are substituted and sent upstream as https://HOST/ (port 443).
	PlainHTTP bool
}

// Minter makes leaf certificates (*CA is one).
type Minter interface {
	Leaf(host string) (*tls.Certificate, error)
}

// Substituter terminates TLS for hosts bound to a VM's secrets and puts the
// secrets' values in place of their placeholders; its Hook is an
// egress.Proxy.Hook.
type Substituter struct {
	Subs    func(vmID string) []Sub                 // the VM's current bindings (with values)
	CA      func(vmID string) (Minter, error)       // the VM's CA
	RootCAs *x509.CertPool                          // verifying upstreams; nil = host's system roots (honours SSL_CERT_FILE)
	Deny    func(vmID string, d model.EgressDenial) // record a denial (Via "secrets")
	Log     *slog.Logger
}

// Hook takes over a connection to a host bound to one of the VM's secrets
// (TLS, or plain HTTP for a PlainHTTP secret) and serves it until it ends;
// it returns false, leaving the connection to the proxy, for every other
// host. A placeholder seen in a plain HTTP request it leaves alone is
// recorded as a denial.
func (s *Substituter) Hook(ctx context.Context, c *egress.Conn) bool {
	if c.Name == "" || s.Subs == nil {
		return false
	}
	name, ok := egress.NormalName(c.Name)
	if !ok {
		return false
	}
	subs := s.Subs(c.VMID)
	if len(subs) == 0 {
		return false
	}
	if c.TLS {
		if !anyBound(subs, name, false) {
			return false
		}
		s.serveTLS(ctx, c, name)
		return true
	}
	if c.Port == 80 && c.DialPort != nil && anyBound(subs, name, true) {
		s.servePlain(ctx, c, name)
		return true
	}
	// Spliced unchanged: only the first request head can be seen.
	for _, sub := range subs {
		if sub.Placeholder == "" || !strings.Contains(string(c.Head), sub.Placeholder) && !headHasBasic(c.Head, sub.Placeholder) {
			continue
		}
		s.deny(c.VMID, name, denyReason(sub.Name, sub.boundTo(name)))
	}
	return false
}

func (s *Substituter) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Substituter) deny(vmID, name, reason string) {
	if s.Deny != nil { // which logs it, within a budget per VM
		s.Deny(vmID, model.EgressDenial{Time: time.Now(), Via: "secrets", Name: name, Reason: reason})
	}
}

func (s *Substituter) serveTLS(ctx context.Context, c *egress.Conn, name string) {
	defer c.Client.Close()
	log := s.log().With("vm", c.VMID, "name", name)
	if s.CA == nil {
		log.Warn("secrets: no CA")
		return
	}
	ca, err := s.CA(c.VMID)
	if err != nil {
		log.Warn("secrets: VM CA", "err", err)
		return
	}
	leaf, err := ca.Leaf(name)
	if err != nil {
		log.Warn("secrets: leaf certificate", "err", err)
		return
	}
	tc := tls.Server(&replayConn{Conn: c.Client, head: c.Head}, &tls.Config{
		Certificates: []tls.Certificate{*leaf},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	})
	tc.SetDeadline(time.Now().Add(HandshakeTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		log.Info("secrets: guest TLS handshake failed (does the guest trust the VM CA?)", "err", err)
		return
	}
	tc.SetDeadline(time.Time{})
	s.serve(ctx, c, name, tc, c.Port, c.Dial, false)
}

func (s *Substituter) servePlain(ctx context.Context, c *egress.Conn, name string) {
	defer c.Client.Close()
	dial := func(ctx context.Context) (net.Conn, error) { return c.DialPort(ctx, 443) }
	s.serve(ctx, c, name, &replayConn{Conn: c.Client, head: c.Head}, 443, dial, true)
}

// serve serves HTTP on the guest's connection conn, forwarding every
// request over TLS to name:upPort through dial.
func (s *Substituter) serve(ctx context.Context, c *egress.Conn, name string, conn net.Conn, upPort uint16, dial func(context.Context) (net.Conn, error), plain bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := s.log().With("vm", c.VMID, "name", name)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, egress.DialTimeout)
			defer cancel()
			return dial(dctx)
		},
		TLSClientConfig:        &tls.Config{RootCAs: s.RootCAs, ServerName: name, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    HandshakeTimeout,
		IdleConnTimeout:        IdleTimeout,
		MaxResponseHeaderBytes: maxUpstreamHeader,
		DisableCompression:     true,
		MaxIdleConnsPerHost:    4,
		MaxConnsPerHost:        maxUpstreamConns,
	}
	defer tr.CloseIdleConnections()
	guestPort := c.Port
	h := &handler{s: s, vmID: c.VMID, name: name, guestPort: guestPort, plain: plain, log: log}
	h.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "https"
			pr.Out.URL.Host = net.JoinHostPort(name, strconv.Itoa(int(upPort)))
			pr.Out.Host = ""
			if upPort == 443 {
				pr.Out.Host = name
			}
		},
		Transport:      tr,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.upstreamError,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	l := &oneConnListener{conn: conn, done: make(chan struct{})}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			wg.Add(1)
			defer wg.Done()
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: maxConcurrentStream},
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				l.Close()
			}
		},
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	if !plain {
		srv.Protocols.SetHTTP2(true)
	}
	stop := context.AfterFunc(ctx, func() { srv.Close(); conn.Close() })
	defer stop()
	srv.Serve(l)
	wg.Wait()
}

// gunzipBody reads a gzip body decompressed and closes the body.
type gunzipBody struct {
	*gzip.Reader
	body io.Closer
}

func (g *gunzipBody) Close() error { return g.body.Close() }

// replayConn reads head before the rest of the connection.
type replayConn struct {
	net.Conn
	head []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// oneConnListener accepts conn once, then waits for Close.
type oneConnListener struct {
	mu     sync.Mutex
	conn   net.Conn
	done   chan struct{}
	closed bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }

// handler substitutes and forwards the requests of one guest connection.
type handler struct {
	s         *Substituter
	vmID      string
	name      string
	guestPort uint16
	plain     bool
	log       *slog.Logger
	proxy     *httputil.ReverseProxy
}

type scrubKey struct{}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.hostMatches(r.Host) {
		// Another name on this connection (HTTP/2 coalescing, or domain
		// fronting): never sent on with a secret.
		http.Error(w, fmt.Sprintf("banger: this connection is for %s, not %s", h.name, r.Host), http.StatusMisdirectedRequest)
		return
	}
	rep, denied, err := substitute(r, h.s.Subs(h.vmID), h.name, h.plain)
	for _, why := range denied {
		h.s.deny(h.vmID, h.name, why)
	}
	if err != nil {
		h.log.Info("secrets: request refused", "err", err)
		http.Error(w, "banger: "+err.Error(), http.StatusRequestHeaderFieldsTooLarge)
		return
	}
	r.Header.Del("Accept-Encoding")
	h.proxy.ServeHTTP(&scrub1xx{w, rep}, r.WithContext(context.WithValue(r.Context(), scrubKey{}, rep)))
}

// scrub1xx scrubs the headers of informational responses (103 Early
// Hints), which the reverse proxy relays without ModifyResponse.
type scrub1xx struct {
	http.ResponseWriter
	rep *replacer
}

func (w *scrub1xx) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.rep.scrubHeader(w.ResponseWriter.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the guest's writer (flush, hijack).
func (w *scrub1xx) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// hostMatches reports whether a request's Host names the connection's host
// (and port, when it carries one).
func (h *handler) hostMatches(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	n, _ := egress.NormalName(host)
	return n == h.name && (port == "" || port == strconv.Itoa(int(h.guestPort)))
}

func (h *handler) modifyResponse(resp *http.Response) error {
	rep, _ := resp.Request.Context().Value(scrubKey{}).(*replacer)
	if rep == nil || rep.empty() {
		return nil
	}
	rep.scrubHeader(resp.Header)
	rep.scrubHeader(resp.Trailer)
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.Body == nil || resp.Body == http.NoBody {
		return nil
	}
	trailer := resp.Trailer
	if resp.Request.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		// No body, and its Content-Length is not this one's; but HTTP/2
		// may still send trailers, which arrive when the body ends.
		resp.Body = newScrubReader(resp.Body, rep, func() { rep.scrubHeader(trailer) })
		return nil
	}
	body := resp.Body
	switch ce := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		// Sent compressed although not asked to: decompressed, to be scrubbed.
		zr, err := gzip.NewReader(body)
		if err != nil {
			return fmt.Errorf("gzip response: %w", err)
		}
		body = &gunzipBody{zr, body}
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	default:
		h.log.Info("secrets: response encoded with "+ce+" although not asked to: not scrubbed", "status", resp.StatusCode)
		return nil
	}
	resp.Body = newScrubReader(body, rep, func() { rep.scrubHeader(trailer) })
	if rep.changesLength() {
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	}
	return nil
}

func (h *handler) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	msg := err.Error()
	if rep, _ := r.Context().Value(scrubKey{}).(*replacer); rep != nil {
		msg = rep.String(msg)
	}
	h.log.Info("secrets: upstream failed", "err", msg)
	http.Error(w, "banger: upstream "+h.name+": "+msg, http.StatusBadGateway)
}
