package dns

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// fakeUpstream runs a resolver on 127.0.0.1 that answers every A query
// with 192.0.2.77 and records the names it saw.
func fakeUpstream(t *testing.T) (addr string, seen chan string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	seen = make(chan string, 16)
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		seen <- w.LocalAddr().Network() + " " + r.Question[0].Name
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &mdns.A{
			Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60},
			A:   net.IPv4(192, 0, 2, 77),
		})
		_ = w.WriteMsg(m)
	})
	us := &mdns.Server{PacketConn: pc, Handler: h}
	ts := &mdns.Server{Listener: ln, Handler: h}
	go func() { _ = us.ActivateAndServe() }()
	go func() { _ = ts.ActivateAndServe() }()
	t.Cleanup(func() { _ = us.Shutdown(); _ = ts.Shutdown() })
	return pc.LocalAddr().String(), seen
}

// forwardAll lets every client have names resolved upstream.
func forwardAll(netip.Addr) bool { return true }

func startServer(t *testing.T, allowed netip.Prefix, upstreams ...string) netip.AddrPort {
	t.Helper()
	return startServerFwd(t, allowed, forwardAll, upstreams...)
}

// startServerFwd is startServer with the clients allowed to forward.
func startServerFwd(t *testing.T, allowed netip.Prefix, forward func(netip.Addr) bool, upstreams ...string) netip.AddrPort {
	t.Helper()
	names := map[string]netip.Addr{"web": netip.MustParseAddr("172.30.0.5")}
	srv, err := ListenAny(Config{
		Addr:    netip.MustParseAddr("127.0.0.1"),
		Allowed: allowed,
		Domain:  "vm",
		Lookup: func(name string) (netip.Addr, bool) {
			a, ok := names[name]
			return a, ok
		},
		Upstreams: func() []string { return upstreams },
		Forward:   forward,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv.Addr()
}

func query(t *testing.T, network string, server netip.AddrPort, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, server.String())
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, mdns.TypeToString[qtype], network, err)
	}
	return r
}

func answerA(t *testing.T, r *mdns.Msg) string {
	t.Helper()
	if r.Rcode != mdns.RcodeSuccess {
		t.Fatalf("rcode %s, want NOERROR", mdns.RcodeToString[r.Rcode])
	}
	if len(r.Answer) != 1 {
		t.Fatalf("answers %v, want one A", r.Answer)
	}
	a, ok := r.Answer[0].(*mdns.A)
	if !ok {
		t.Fatalf("answer %v is not A", r.Answer[0])
	}
	return a.A.String()
}

func TestLocalNames(t *testing.T) {
	srv := startServer(t, netip.MustParsePrefix("127.0.0.0/8"))
	for _, network := range []string{"udp", "tcp"} {
		if got := answerA(t, query(t, network, srv, "web.vm.", mdns.TypeA)); got != "172.30.0.5" {
			t.Errorf("%s: web.vm = %s, want 172.30.0.5", network, got)
		}
	}
	if got := answerA(t, query(t, "udp", srv, "WeB.Vm.", mdns.TypeA)); got != "172.30.0.5" {
		t.Errorf("mixed case: got %s", got)
	}
	r := query(t, "udp", srv, "nope.vm.", mdns.TypeA)
	if r.Rcode != mdns.RcodeNameError || !r.Authoritative {
		t.Errorf("nope.vm: rcode %s authoritative %v, want authoritative NXDOMAIN", mdns.RcodeToString[r.Rcode], r.Authoritative)
	}
	r = query(t, "udp", srv, "web.vm.", mdns.TypeAAAA)
	if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("web.vm AAAA: rcode %s answers %v, want NOERROR and none", mdns.RcodeToString[r.Rcode], r.Answer)
	}
}

func TestForwardsOtherNames(t *testing.T) {
	up, seen := fakeUpstream(t)
	srv := startServer(t, netip.MustParsePrefix("127.0.0.0/8"), "127.0.0.1:1", up)
	for _, network := range []string{"udp", "tcp"} {
		if got := answerA(t, query(t, network, srv, "example.com.", mdns.TypeA)); got != "192.0.2.77" {
			t.Errorf("%s: example.com = %s, want the upstream's 192.0.2.77", network, got)
		}
		if got := <-seen; got != network+" example.com." {
			t.Errorf("upstream saw %q, want %q", got, network+" example.com.")
		}
	}
}

func TestNoUpstreamIsServFail(t *testing.T) {
	srv := startServer(t, netip.MustParsePrefix("127.0.0.0/8"), "127.0.0.1:1")
	r := query(t, "tcp", srv, "example.com.", mdns.TypeA)
	if r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
}

func TestRefusesClientsOutsideSubnet(t *testing.T) {
	up, seen := fakeUpstream(t)
	srv := startServer(t, netip.MustParsePrefix("10.99.0.0/24"), up)
	for _, name := range []string{"web.vm.", "example.com."} {
		r := query(t, "udp", srv, name, mdns.TypeA)
		if r.Rcode != mdns.RcodeRefused || len(r.Answer) != 0 {
			t.Errorf("%s from 127.0.0.1: rcode %s answers %v, want REFUSED", name, mdns.RcodeToString[r.Rcode], r.Answer)
		}
	}
	select {
	case q := <-seen:
		t.Errorf("refused query reached the upstream: %s", q)
	default:
	}
}

// A client that may not forward (a VM without NAT) gets its VM names and
// REFUSED for anything else, and the upstream never sees the query: DNS is
// no tunnel out of the host.
func TestRefusesForwardingWithoutNAT(t *testing.T) {
	up, seen := fakeUpstream(t)
	var asked []netip.Addr
	for _, forward := range []func(netip.Addr) bool{
		func(c netip.Addr) bool { asked = append(asked, c); return false },
		nil,
	} {
		srv := startServerFwd(t, netip.MustParsePrefix("127.0.0.0/8"), forward, up)
		for _, network := range []string{"udp", "tcp"} {
			if got := answerA(t, query(t, network, srv, "web.vm.", mdns.TypeA)); got != "172.30.0.5" {
				t.Errorf("%s: web.vm = %s, want 172.30.0.5", network, got)
			}
			for _, name := range []string{"tunnel.example.com.", "5.0.30.172.in-addr.arpa."} {
				r := query(t, network, srv, name, mdns.TypeTXT)
				if r.Rcode != mdns.RcodeRefused || len(r.Answer) != 0 {
					t.Errorf("%s %s: rcode %s answers %v, want REFUSED", network, name, mdns.RcodeToString[r.Rcode], r.Answer)
				}
			}
		}
	}
	select {
	case q := <-seen:
		t.Errorf("a query of a client without NAT reached the upstream: %s", q)
	default:
	}
	if len(asked) == 0 || asked[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Forward was asked about %v, want the client 127.0.0.1", asked)
	}
}

func TestListenRejectsIncompleteConfig(t *testing.T) {
	_, err := Listen(Config{Addr: netip.MustParseAddr("127.0.0.1")})
	if err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("err = %v, want incomplete configuration", err)
	}
}
