package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"banger/internal/api"
	"banger/internal/authz"
)

// Limits bound what callers can hold of the daemon's socket. Zero fields
// take the defaults (DefaultLimits).
type Limits struct {
	// PerUID is how many connections one non-root uid may hold at once;
	// RootConns the same for uid 0. A connection over the cap is answered
	// 503 with a one-line error and closed.
	PerUID, RootConns int
	// HeaderTimeout bounds reading a request's headers, ReadTimeout its
	// headers and body (bodies are at most server.MaxBodyBytes). Neither
	// applies while a handler runs: long routes (VM start, pulls, streamed
	// progress) are bounded by their own work, not by these.
	HeaderTimeout, ReadTimeout time.Duration
	// IdleTimeout closes a kept-alive connection with no next request.
	IdleTimeout time.Duration
	// WriteStall closes a connection whose one write (a reply, a progress
	// line) cannot complete for this long: a caller that stops reading.
	// It bounds each write, not the reply, so streams of any length work.
	WriteStall time.Duration
}

// DefaultLimits are the daemon's limits unless Options say otherwise.
var DefaultLimits = Limits{PerUID: 64, RootConns: 256, HeaderTimeout: 10 * time.Second,
	ReadTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, WriteStall: 2 * time.Minute}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	for _, f := range []struct {
		v   *int
		def int
	}{{&l.PerUID, d.PerUID}, {&l.RootConns, d.RootConns}} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&l.HeaderTimeout, d.HeaderTimeout}, {&l.ReadTimeout, d.ReadTimeout}, {&l.IdleTimeout, d.IdleTimeout}, {&l.WriteStall, d.WriteStall}} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return l
}

// newHTTPServer is the daemon's HTTP server over a listener made by
// limitConns: every request carries its connection's caller.
func newHTTPServer(h http.Handler, lim Limits, log *slog.Logger) *http.Server {
	lim = lim.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.HeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		IdleTimeout:       lim.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if cc, ok := c.(*callerConn); ok {
				return authz.WithCaller(ctx, cc.caller)
			}
			return authz.WithCaller(ctx, peerCaller(c, log))
		},
	}
}

// peerCaller reads SO_PEERCRED; a connection without it counts as nobody.
func peerCaller(c net.Conn, log *slog.Logger) authz.Caller {
	caller, err := authz.PeerCredentials(c)
	if err != nil {
		log.Warn("peer credentials unavailable; treating caller as nobody", "err", err)
		caller = authz.Caller{UID: 65534, GID: 65534}
	}
	return caller
}

// connLimiter is a listener that counts connections per uid and turns
// away those over the cap.
type connLimiter struct {
	net.Listener
	lim Limits
	log *slog.Logger

	mu    sync.Mutex
	perID map[int]int
	// refusing bounds the connections being turned away at once; past it
	// they are closed without an answer.
	refusing chan struct{}
}

// limitConns wraps ln (a Unix socket listener) with the per-uid cap.
func limitConns(ln net.Listener, lim Limits, log *slog.Logger) net.Listener {
	return &connLimiter{Listener: ln, lim: lim.withDefaults(), log: log, perID: map[int]int{}, refusing: make(chan struct{}, 32)}
}

// Accept returns the next connection within its caller's cap.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		caller := peerCaller(c, l.log)
		max := l.lim.PerUID
		if caller.Root() {
			max = l.lim.RootConns
		}
		l.mu.Lock()
		n := l.perID[caller.UID]
		if n < max {
			l.perID[caller.UID] = n + 1
		}
		l.mu.Unlock()
		if n >= max {
			l.refuse(c, caller, max)
			continue
		}
		return &callerConn{Conn: c, caller: caller, stall: l.lim.WriteStall, release: func() { l.release(caller.UID) }}, nil
	}
}

func (l *connLimiter) release(uid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perID[uid]--; l.perID[uid] <= 0 {
		delete(l.perID, uid)
	}
}

// refuse answers 503 with the error body and closes c, in the background
// (bounded): the answer is written first, then what the caller sent is
// read off for a moment so the close does not reset the connection
// before the caller reads the answer.
func (l *connLimiter) refuse(c net.Conn, caller authz.Caller, max int) {
	l.log.Warn("connection refused: too many from one caller", "uid", caller.UID, "pid", caller.PID, "limit", max)
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		defer c.Close()
		msg := fmt.Sprintf("too many connections from uid %d (at most %d at a time): close idle banger clients and retry", caller.UID, max)
		body, _ := json.Marshal(api.ErrorBody{Error: api.ErrorDetail{Code: api.CodeOf(api.ErrUnavailable), Message: msg}})
		c.SetDeadline(time.Now().Add(time.Second))
		// Read the request's head first (bounded): an HTTP client that gets
		// an answer before it has sent its request calls it unsolicited and
		// reports a broken connection instead of the 503.
		readHead(c, 16<<10)
		fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s\n", len(body)+1, body)
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// readHead reads from c until the end of an HTTP request head, max bytes,
// or c's deadline, whichever comes first.
func readHead(c net.Conn, max int) {
	buf := make([]byte, 0, 1024)
	chunk := make([]byte, 1024)
	for len(buf) < max {
		n, err := c.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if bytes.Contains(buf, []byte("\r\n\r\n")) || err != nil {
			return
		}
	}
}

// callerConn is an accepted connection with its caller. Each write must
// complete within stall; Close gives its slot back.
type callerConn struct {
	net.Conn
	caller  authz.Caller
	stall   time.Duration
	once    sync.Once
	release func()
}

func (c *callerConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.stall))
	return c.Conn.Write(p)
}

func (c *callerConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
