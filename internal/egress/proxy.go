package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/model"
)

// Proxy defaults.
const (
	HeadTimeout   = 10 * time.Second // for the guest's ClientHello or request head
	DialTimeout   = 10 * time.Second
	MaxConns      = 1024 // in all
	MaxConnsPerVM = 256
)

// Conn is one connection the proxy has allowed, as a Hook sees it.
type Conn struct {
	VMID string
	// Client is the guest's connection; Head the bytes already read from it
	// (the ClientHello or request head), which the upstream must get first.
	Client net.Conn
	Head   []byte
	// Name is the SNI or Host ("" when the connection is allowed by a
	// network rule); Port the port the guest asked for (80 or 443).
	Name string
	Port uint16
	TLS  bool
	// Dial connects to the allowed destination the way the proxy does
	// (resolved on the host, inside addresses refused).
	Dial func(ctx context.Context) (net.Conn, error)
	// DialPort connects to Name on another port, resolved and refused the
	// same way as Dial (nil when the connection is allowed by a network
	// rule); for a hook that serves a bound name itself (plain HTTP sent
	// upstream as HTTPS).
	DialPort func(ctx context.Context, port uint16) (net.Conn, error)
}

// Hook may take over an allowed connection before the proxy dials it
// (for instance to terminate TLS for a host bound to a secret): it returns
// true when it handled (and closed) the connection.
type Hook func(ctx context.Context, c *Conn) bool

// Proxy serves the redirected TCP 80 (HTTP) and 443 (TLS) connections of
// VMs under an allowlist.
type Proxy struct {
	Registry *Registry
	Resolver Resolver
	// Bridge is the VMs' subnet (never dialled).
	Bridge netip.Prefix
	Hook   Hook
	Log    *slog.Logger

	local hostAddrs
	slots chan struct{}
	mu    sync.Mutex
	perVM map[netip.Addr]int
}

// Serve accepts on l until ctx is done; tls says whether l gets port 443's
// connections (else port 80's).
func (p *Proxy) Serve(ctx context.Context, l net.Listener, tls bool) error {
	p.mu.Lock()
	if p.slots == nil {
		p.slots = make(chan struct{}, MaxConns)
		p.perVM = map[netip.Addr]int{}
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	p.mu.Unlock()
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("egress proxy: accept: %w", err)
		}
		go p.handle(ctx, c, tls)
	}
}

// acquire takes a connection slot for src; false when a cap is reached.
func (p *Proxy) acquire(src netip.Addr) bool {
	select {
	case p.slots <- struct{}{}:
	default:
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.perVM[src] >= MaxConnsPerVM {
		<-p.slots
		return false
	}
	p.perVM[src]++
	return true
}

func (p *Proxy) release(src netip.Addr) {
	p.mu.Lock()
	if p.perVM[src]--; p.perVM[src] <= 0 {
		delete(p.perVM, src)
	}
	p.mu.Unlock()
	<-p.slots
}

func (p *Proxy) handle(ctx context.Context, c net.Conn, isTLS bool) {
	src := addrOf(c.RemoteAddr())
	port := uint16(80)
	if isTLS {
		port = 443
	}
	orig := originalDst(c)
	if orig.IsValid() {
		port = orig.Port()
	}
	deny := func(name, reason string) {
		d := Denial{Via: "proxy", Name: name, Reason: reason}
		if orig.IsValid() {
			d.Destination = orig.String()
		}
		if log, dropped := p.Registry.Deny(src, d); log {
			p.Log.Info("egress denied", "client", src, "name", name, "destination", d.Destination, "reason", reason, "unlogged_before", dropped)
		}
		c.Close()
	}
	id, pol, ok := p.Registry.Lookup(src)
	if !ok || pol.Mode != model.EgressAllow {
		c.Close()
		return
	}
	if !p.acquire(src) {
		deny("", "too many connections")
		return
	}
	defer p.release(src)
	c.SetDeadline(time.Now().Add(HeadTimeout))
	var head []byte
	var name string
	var err error
	if isTLS {
		head, name, err = ReadClientHello(c)
	} else {
		head, name, err = ReadRequestHead(c)
	}
	if err != nil && !errors.Is(err, errNoSNI) && !errors.Is(err, errNoHost) {
		deny(name, "unreadable "+proto(isTLS)+": "+err.Error())
		return
	}
	if _, perr := netip.ParseAddr(name); perr == nil {
		name = "" // an address given as a name is judged as an address
	}
	conn := &Conn{VMID: id, Client: c, Head: head, Name: name, Port: port, TLS: isTLS}
	var dst func(ctx context.Context) (net.Conn, netip.AddrPort, error)
	switch {
	case name != "" && pol.AllowsNamePort(name, port):
		dst = func(ctx context.Context) (net.Conn, netip.AddrPort, error) { return p.dialName(ctx, pol, name, port) }
		conn.DialPort = func(ctx context.Context, port uint16) (net.Conn, error) {
			u, _, err := p.dialName(ctx, pol, name, port)
			return u, err
		}
	case orig.IsValid() && pol.AllowsAddr(orig.Addr(), port):
		conn.Name = ""
		dst = func(ctx context.Context) (net.Conn, netip.AddrPort, error) { return p.dialAddr(ctx, orig) }
	case name == "":
		deny("", "no server name and no network rule for the address")
		return
	default:
		deny(name, "name not allowed")
		return
	}
	var dialed netip.AddrPort
	conn.Dial = func(ctx context.Context) (net.Conn, error) {
		u, ap, err := dst(ctx)
		dialed = ap
		return u, err
	}
	c.SetDeadline(time.Time{})
	if p.Hook != nil && p.hook(ctx, src, conn) {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, DialTimeout)
	up, err := conn.Dial(dctx)
	cancel()
	if err != nil {
		if dialed.IsValid() {
			orig = dialed
		}
		deny(name, err.Error())
		return
	}
	live := &proxied{name: conn.Name, dst: dialed, close: closeBoth(c, up)}
	untrack, ok := p.Registry.track(src, live)
	if !ok {
		up.Close()
		deny(name, "policy changed")
		return
	}
	defer untrack()
	splice(c, up, head)
}

// hook offers conn to the Hook; while the Hook serves it, the connection is
// tracked like a spliced one (a policy that no longer allows its name, or
// the VM's removal, closes it).
func (p *Proxy) hook(ctx context.Context, src netip.Addr, conn *Conn) bool {
	if conn.Name == "" {
		return p.Hook(ctx, conn)
	}
	live := &proxied{name: conn.Name, dst: netip.AddrPortFrom(netip.Addr{}, conn.Port), close: func() { conn.Client.Close() }}
	untrack, ok := p.Registry.track(src, live)
	if !ok {
		return false // the proxy's own dial and track refuse it
	}
	defer untrack()
	return p.Hook(ctx, conn)
}

func proto(isTLS bool) string {
	if isTLS {
		return "TLS ClientHello"
	}
	return "HTTP request"
}

// dialName resolves name on the host and dials the first address that is
// neither an inside address nor denied.
func (p *Proxy) dialName(ctx context.Context, pol Policy, name string, port uint16) (net.Conn, netip.AddrPort, error) {
	addrs, _, err := p.Resolver.LookupA(ctx, name)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	var last error
	var lastAP netip.AddrPort
	for i, a := range addrs {
		if i == 4 {
			break
		}
		ap := netip.AddrPortFrom(a, port)
		lastAP = ap
		if why := Refused(a, p.Bridge, p.local.has); why != "" {
			last = fmt.Errorf("%s resolves to %s, a %s", name, a, why)
			continue
		}
		if pol.Denies(a) {
			last = fmt.Errorf("%s resolves to %s, which is denied", name, a)
			continue
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp4", ap.String())
		if err == nil {
			return c, ap, nil
		}
		last = err
	}
	return nil, lastAP, last
}

// dialAddr dials an address a network rule allows (the rule may name a
// private network on purpose; the host itself and the bridge stay out).
func (p *Proxy) dialAddr(ctx context.Context, ap netip.AddrPort) (net.Conn, netip.AddrPort, error) {
	a := ap.Addr()
	if a.IsLoopback() || a.IsUnspecified() || p.Bridge.Contains(a) || p.local.has(a) {
		return nil, ap, fmt.Errorf("%s is an address of this host", a)
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp4", ap.String())
	return c, ap, err
}

// splice sends head then copies both ways until both directions end.
func splice(client, up net.Conn, head []byte) {
	defer client.Close()
	defer up.Close()
	if _, err := up.Write(head); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	half := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go half(up, client)
	go half(client, up)
	<-done
	<-done
}

func addrOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// originalDst is the destination the guest dialled before nftables
// redirected it (SO_ORIGINAL_DST); invalid when unknown.
func originalDst(c net.Conn) netip.AddrPort {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}
	}
	var out netip.AddrPort
	rc.Control(func(fd uintptr) {
		m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
		if err != nil {
			return
		}
		// struct sockaddr_in: family, port (big endian), address.
		port := uint16(m.Multiaddr[2])<<8 | uint16(m.Multiaddr[3])
		a := netip.AddrFrom4([4]byte{m.Multiaddr[4], m.Multiaddr[5], m.Multiaddr[6], m.Multiaddr[7]})
		out = netip.AddrPortFrom(a, port)
	})
	return out
}

// ListenAddr is host:port for a listener on addr.
func ListenAddr(addr netip.Addr, port uint16) string {
	return net.JoinHostPort(addr.String(), strconv.Itoa(int(port)))
}
