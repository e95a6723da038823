package network

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// hostResolver runs a resolver on 127.0.0.1:53 in the (test) host
// namespace answering every A query with 192.0.2.77; seen receives the
// names asked.
func hostResolver(t *testing.T) (seen chan string) {
	t.Helper()
	seen = make(chan string, 16)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		select {
		case seen <- r.Question[0].Name:
		default:
		}
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &mdns.A{
			Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60},
			A:   net.IPv4(192, 0, 2, 77),
		})
		_ = w.WriteMsg(m)
	})
	srv := &mdns.Server{PacketConn: pc, Handler: h}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return seen
}

// lookupIn sends one query from inside ns.
func lookupIn(t *testing.T, ns netns.NsHandle, network, server, name string) (*mdns.Msg, error) {
	t.Helper()
	var r *mdns.Msg
	var err error
	inNS(t, ns, func() {
		c := &mdns.Client{Net: network, Timeout: 2 * time.Second}
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		r, _, err = c.Exchange(m, server)
	})
	return r, err
}

func onlyA(r *mdns.Msg) string {
	if r == nil || r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		return ""
	}
	if a, ok := r.Answer[0].(*mdns.A); ok {
		return a.A.String()
	}
	return ""
}

func TestDNSEndToEnd(t *testing.T) {
	if !isolated(t) {
		return
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	must(t, os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644))
	upstream := hostResolver(t)
	l := newLab(t, Config{ResolvConf: resolv})
	gw := gatewayOf(l.m.Subnet())
	server := netip.AddrPortFrom(gw, 53).String()
	outside := outsideHost(t, l.m.Subnet())
	vm := l.startVM("web", false)
	natVM := l.startVM("api", true)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.m.ServeDNS(ctx, func(name string) (netip.Addr, bool) {
			if name == "web" {
				return vm.ip, true
			}
			return netip.Addr{}, false
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeDNS: %v", err)
		}
	}()

	// Wait for the server to answer (bounded; not an assertion on time).
	var r *mdns.Msg
	var err error
	for range 50 {
		if r, err = lookupIn(t, vm.ns, "udp", server, "web.vm."); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := onlyA(r); got != vm.ip.String() {
		t.Fatalf("web.vm from the VM over udp: %v %v, want %s", r, err, vm.ip)
	}
	r, err = lookupIn(t, vm.ns, "tcp", server, "web.vm.")
	if got := onlyA(r); got != vm.ip.String() {
		t.Errorf("web.vm from the VM over tcp: %v %v", r, err)
	}
	// A VM without NAT gets no name outside the domain resolved: DNS is
	// no way out for it. One with NAT has them forwarded.
	for _, network := range []string{"udp", "tcp"} {
		r, err = lookupIn(t, vm.ns, network, server, "tunnel.example.com.")
		if err != nil || r.Rcode != mdns.RcodeRefused || len(r.Answer) != 0 {
			t.Errorf("tunnel.example.com from the VM without NAT over %s: %v %v, want REFUSED", network, r, err)
		}
	}
	select {
	case name := <-upstream:
		t.Errorf("the host's resolver was asked %s for a VM without NAT", name)
	default:
	}
	r, err = lookupIn(t, natVM.ns, "udp", server, "example.com.")
	if got := onlyA(r); got != "192.0.2.77" {
		t.Errorf("example.com from the VM with NAT (forwarded): %v %v", r, err)
	}
	if name := <-upstream; name != "example.com." {
		t.Errorf("the host's resolver was asked %s, want example.com.", name)
	}
	// NAT switched off applies to DNS at once.
	must(t, l.m.SetNAT(context.Background(), "api", false))
	r, err = lookupIn(t, natVM.ns, "udp", server, "example.org.")
	if err != nil || r.Rcode != mdns.RcodeRefused {
		t.Errorf("example.org from the VM after NAT was turned off: %v %v, want REFUSED", r, err)
	}
	r, err = lookupIn(t, vm.ns, "udp", server, "other.vm.")
	if err != nil || r.Rcode != mdns.RcodeNameError {
		t.Errorf("other.vm: %v %v, want NXDOMAIN", r, err)
	}

	// A client outside the subnet reaching the bridge address is refused,
	// and nothing listens on the host's other addresses.
	r, err = lookupIn(t, outside, "udp", server, "web.vm.")
	if err != nil || r.Rcode != mdns.RcodeRefused || len(r.Answer) != 0 {
		t.Errorf("query from outside the subnet: %v %v, want REFUSED", r, err)
	}
	if _, err := lookupIn(t, outside, "tcp", "10.99.0.1:53", "web.vm."); err == nil {
		t.Error("banger DNS answers on an address other than the bridge's")
	}
}
