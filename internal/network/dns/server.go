// Package dns is banger's resolver for VMs: it answers NAME.DOMAIN with a
// VM's address and forwards other queries to the host's resolvers for the
// clients allowed to (VMs with NAT), refusing them for everyone else. It
// listens on one address (the bridge gateway) and answers only clients of
// one subnet.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Config configures a Server.
type Config struct {
	// Addr is the one address to listen on; Port defaults to 53.
	Addr netip.Addr
	Port uint16
	// Allowed is the subnet whose clients are answered; others are refused.
	Allowed netip.Prefix
	// Domain is the zone answered locally, e.g. "vm".
	Domain string
	// Lookup maps a name (the part before .Domain, lower case) to an
	// address.
	Lookup func(name string) (netip.Addr, bool)
	// Upstreams returns the resolvers ("host:port") other names go to.
	Upstreams func() []string
	// Forward reports whether a client may have names outside Domain
	// resolved upstream; the others get REFUSED and nothing leaves the
	// host. Nil: no client may. The client is known by its source address,
	// which banger's tap guards bind to the VM.
	Forward func(client netip.Addr) bool
	// Egress, when set, decides instead of Forward for the clients it
	// governs (VMs under an allowlist; see egress.go).
	Egress Egress
	Log    *slog.Logger
}

// localTTL is the TTL of answers for VM names: short, as VMs come and go.
const localTTL = 10

// upstreamTimeout bounds one query to one upstream resolver.
const upstreamTimeout = 3 * time.Second

// Server is a bound resolver; Serve runs it.
type Server struct {
	cfg    Config
	domain string // ".vm." form
	udp    net.PacketConn
	tcp    net.Listener
}

// Listen binds UDP and TCP on cfg.Addr, port cfg.Port (53 when 0).
func Listen(cfg Config) (*Server, error) {
	if cfg.Port == 0 {
		cfg.Port = 53
	}
	return listen(cfg, false)
}

// ListenAny is Listen on a free port, the same for UDP and TCP (for tests
// and tools).
func ListenAny(cfg Config) (*Server, error) {
	cfg.Port = 0
	return listen(cfg, true)
}

func listen(cfg Config, anyPort bool) (*Server, error) {
	if !cfg.Addr.IsValid() || !cfg.Allowed.IsValid() || cfg.Lookup == nil || cfg.Upstreams == nil || strings.Trim(cfg.Domain, ".") == "" {
		return nil, errors.New("dns: incomplete configuration")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	domain := "." + strings.ToLower(strings.Trim(cfg.Domain, ".")) + "."
	var err error
	for range 5 {
		var udp net.PacketConn
		var tcp net.Listener
		udp, tcp, err = bind(cfg.Addr, cfg.Port, anyPort)
		if err == nil {
			return &Server{cfg: cfg, domain: domain, udp: udp, tcp: tcp}, nil
		}
		if !anyPort || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, err
}

// bind opens the UDP socket then a TCP listener on the same port.
func bind(addr netip.Addr, port uint16, any bool) (net.PacketConn, net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		})
		return errors.Join(err, serr)
	}}
	ap := netip.AddrPortFrom(addr, port)
	udp, err := lc.ListenPacket(context.Background(), "udp", ap.String())
	if err != nil {
		return nil, nil, fmt.Errorf("dns: listen %s/udp: %w", ap, err)
	}
	if any {
		ap = netip.AddrPortFrom(addr, uint16(udp.LocalAddr().(*net.UDPAddr).Port))
	}
	tcp, err := lc.Listen(context.Background(), "tcp", ap.String())
	if err != nil {
		udp.Close()
		return nil, nil, fmt.Errorf("dns: listen %s/tcp: %w", ap, err)
	}
	return udp, tcp, nil
}

// Addr is the bound address and port.
func (s *Server) Addr() netip.AddrPort {
	return s.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Serve answers queries until ctx is done, then closes the sockets.
func (s *Server) Serve(ctx context.Context) error {
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) { s.handle(ctx, w, r) })
	udp := &mdns.Server{PacketConn: s.udp, Handler: h, UDPSize: 4096}
	tcp := &mdns.Server{Listener: s.tcp, Handler: h}
	errc := make(chan error, 2)
	go func() { errc <- udp.ActivateAndServe() }()
	go func() { errc <- tcp.ActivateAndServe() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = udp.ShutdownContext(sctx)
	_ = tcp.ShutdownContext(sctx)
	s.udp.Close()
	s.tcp.Close()
	if err != nil {
		return fmt.Errorf("dns: serve on %s: %w", s.Addr(), err)
	}
	return nil
}

func (s *Server) handle(ctx context.Context, w mdns.ResponseWriter, r *mdns.Msg) {
	m := new(mdns.Msg)
	src := remoteAddr(w.RemoteAddr())
	switch {
	case !src.IsValid() || !s.cfg.Allowed.Contains(src):
		s.cfg.Log.Debug("dns: refused client outside subnet", "client", w.RemoteAddr())
		m.SetRcode(r, mdns.RcodeRefused)
	case r.Opcode != mdns.OpcodeQuery:
		m.SetRcode(r, mdns.RcodeNotImplemented)
	case len(r.Question) != 1:
		m.SetRcodeFormatError(r)
	default:
		name := strings.ToLower(r.Question[0].Name)
		label, local := s.localName(name)
		switch {
		case local:
			m = s.answerLocal(r, label)
		case s.cfg.Egress != nil && s.cfg.Egress.Governs(src):
			m = s.answerGoverned(ctx, w.LocalAddr().Network(), r, src, name)
		case s.cfg.Forward != nil && s.cfg.Forward(src):
			m = s.forward(ctx, w.LocalAddr().Network(), r)
		default:
			s.cfg.Log.Debug("dns: refused a name outside the domain for a client without NAT", "client", src, "name", name)
			m.SetRcode(r, mdns.RcodeRefused)
		}
	}
	if err := w.WriteMsg(m); err != nil {
		s.cfg.Log.Debug("dns: write answer", "client", w.RemoteAddr(), "err", err)
	}
}

// localName returns the label before the domain for names in the domain.
func (s *Server) localName(name string) (string, bool) {
	if name == s.domain[1:] {
		return "", true
	}
	label, ok := strings.CutSuffix(name, s.domain)
	return label, ok
}

func (s *Server) answerLocal(r *mdns.Msg, label string) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	if label == "" {
		return m // the zone itself exists and has no records we serve
	}
	addr, ok := s.cfg.Lookup(label)
	if !ok || !addr.Is4() {
		m.Rcode = mdns.RcodeNameError
		return m
	}
	q := r.Question[0]
	if q.Qclass == mdns.ClassINET && (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY) {
		m.Answer = append(m.Answer, &mdns.A{
			Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: localTTL},
			A:   addr.AsSlice(),
		})
	}
	return m
}

// forward asks each upstream in turn over the client's transport.
func (s *Server) forward(ctx context.Context, network string, r *mdns.Msg) *mdns.Msg {
	c := &mdns.Client{Net: network, Timeout: upstreamTimeout}
	self := netip.AddrPortFrom(s.cfg.Addr, s.Addr().Port()).String()
	for _, up := range s.cfg.Upstreams() {
		if up == self {
			continue
		}
		resp, _, err := c.ExchangeContext(ctx, r.Copy(), up)
		if err != nil {
			s.cfg.Log.Debug("dns: upstream failed", "upstream", up, "err", err)
			continue
		}
		resp.Id = r.Id
		return resp
	}
	m := new(mdns.Msg)
	m.SetRcode(r, mdns.RcodeServerFailure)
	return m
}

func remoteAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
