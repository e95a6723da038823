package network

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// lab runs a Manager whose VMs are emulated by network namespaces joined
// to the bridge with veth pairs (a tap has no carrier without a VMM).
type lab struct {
	t      *testing.T
	m      *Manager
	ips    *memIPs
	guests map[string]netns.NsHandle // port name -> guest namespace
}

// guest is an emulated VM.
type guest struct {
	ns netns.NsHandle
	ip netip.Addr
}

func newLab(t *testing.T, cfg Config) *lab {
	t.Helper()
	m, ips := newTestManager(t, cfg)
	l := &lab{t: t, m: m, ips: ips, guests: map[string]netns.NsHandle{}}
	m.newPort = l.vethPort
	if err := m.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// vethPort makes the host side of a VM link; its peer goes into a fresh
// namespace, the guest.
func (l *lab) vethPort(name string) (netlink.Link, error) {
	ns := newNS(l.t)
	peer := "g" + name
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		return nil, err
	}
	p, err := netlink.LinkByName(peer)
	if err == nil {
		err = netlink.LinkSetNsFd(p, int(ns))
	}
	if err != nil {
		return nil, err
	}
	l.guests[name] = ns
	return netlink.LinkByName(name)
}

// startVM attaches a VM and configures its side as banger's guest init
// does from the boot configuration.
func (l *lab) startVM(id string, nat bool) guest {
	t := l.t
	t.Helper()
	att, err := l.m.Attach(context.Background(), id, nat)
	if err != nil {
		t.Fatal(err)
	}
	ns := l.guests[att.Tap]
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth, err := h.LinkByName("g" + att.Tap)
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC(att.MAC)
	must(t, h.LinkSetHardwareAddr(eth, mac))
	must(t, h.AddrAdd(eth, &netlink.Addr{IPNet: prefixIPNet(att.Address)}))
	must(t, h.LinkSetUp(eth))
	must(t, h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: att.Gateway.AsSlice()}))
	if lo, err := h.LinkByName("lo"); err == nil {
		must(t, h.LinkSetUp(lo))
	}
	return guest{ns: ns, ip: att.Address.Addr()}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// outsideHost makes a namespace reachable from the host as 10.99.0.2 over
// a veth (host side up0, 10.99.0.1). It routes the bridge subnet through
// the host, so only banger's rules (not a missing route) keep VMs without
// NAT from reaching it and it from reaching VMs.
func outsideHost(t *testing.T, subnet netip.Prefix) netns.NsHandle {
	t.Helper()
	ns := newNS(t)
	must(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "out0"}))
	up, err := netlink.LinkByName("up0")
	must(t, err)
	a, _ := netlink.ParseAddr("10.99.0.1/24")
	must(t, netlink.AddrAdd(up, a))
	must(t, netlink.LinkSetUp(up))
	out, err := netlink.LinkByName("out0")
	must(t, err)
	must(t, netlink.LinkSetNsFd(out, int(ns)))
	h, err := netlink.NewHandleAt(ns)
	must(t, err)
	defer h.Close()
	out, err = h.LinkByName("out0")
	must(t, err)
	a, _ = netlink.ParseAddr("10.99.0.2/24")
	must(t, h.AddrAdd(out, a))
	must(t, h.LinkSetUp(out))
	must(t, h.RouteAdd(&netlink.Route{LinkIndex: out.Attrs().Index, Dst: prefixIPNet(subnet), Gw: net.IPv4(10, 99, 0, 1)}))
	return ns
}

// serveTCP listens on addr inside ns (the host's namespace when ns is
// -1) and greets every client with "hi"; peers receives their addresses.
func serveTCP(t *testing.T, ns netns.NsHandle, addr string) (peers chan netip.Addr) {
	t.Helper()
	var ln net.Listener
	var err error
	listen := func() { ln, err = net.Listen("tcp4", addr) }
	if ns == -1 {
		listen()
	} else {
		inNS(t, ns, listen)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	peers = make(chan netip.Addr, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap():
			default:
			}
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()
	return peers
}

// connects reports whether a TCP client in ns gets the greeting from addr.
// A dropped connection attempt gives up after the timeout.
func connects(t *testing.T, ns netns.NsHandle, addr string, timeout time.Duration) bool {
	t.Helper()
	ok := false
	dial := func() {
		c, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		b, _ := io.ReadAll(c)
		ok = string(b) == "hi"
	}
	if ns == -1 {
		dial()
	} else {
		inNS(t, ns, dial)
	}
	return ok
}

// Dial timeouts: generous where a connection must succeed, short where it
// must be dropped (these bound waiting; nothing asserts on durations).
const (
	reachTimeout = 5 * time.Second
	dropTimeout  = 1500 * time.Millisecond
)
