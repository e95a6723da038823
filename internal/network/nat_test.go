package network

import (
	"context"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestNATEndToEnd(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	l := newLab(t, Config{})
	gw := gatewayOf(l.m.Subnet())
	outside := outsideHost(t, l.m.Subnet())
	peers := serveTCP(t, outside, "10.99.0.2:8080")

	natVM := l.startVM("natvm", true)
	plainVM := l.startVM("plainvm", false)

	if !connects(t, natVM.ns, "10.99.0.2:8080", reachTimeout) {
		t.Fatal("VM with NAT cannot reach the outside host")
	}
	if src := <-peers; src.String() != "10.99.0.1" {
		t.Errorf("outside host saw %s, want the host's masqueraded 10.99.0.1", src)
	}
	if connects(t, plainVM.ns, "10.99.0.2:8080", dropTimeout) {
		t.Error("VM without NAT reached the outside host")
	}

	// Flipping NAT applies live to new connections.
	must(t, l.m.SetNAT(ctx, "plainvm", true))
	must(t, l.m.SetNAT(ctx, "natvm", false))
	if !connects(t, plainVM.ns, "10.99.0.2:8080", reachTimeout) {
		t.Error("VM cannot reach the outside after NAT was turned on")
	}
	if connects(t, natVM.ns, "10.99.0.2:8080", dropTimeout) {
		t.Error("VM still reaches the outside after NAT was turned off")
	}

	// VMs cannot reach each other.
	serveTCP(t, plainVM.ns, netip.AddrPortFrom(plainVM.ip, 9000).String())
	if connects(t, natVM.ns, netip.AddrPortFrom(plainVM.ip, 9000).String(), dropTimeout) {
		t.Error("one VM reached another")
	}

	// The host's own services on the bridge address are closed to VMs,
	// while the host still reaches the guests (like SSH to the guest).
	serveTCP(t, -1, netip.AddrPortFrom(gw, 2222).String())
	if connects(t, plainVM.ns, netip.AddrPortFrom(gw, 2222).String(), dropTimeout) {
		t.Error("a VM reached a host service on the bridge address")
	}
	serveTCP(t, plainVM.ns, netip.AddrPortFrom(plainVM.ip, 22).String())
	if !connects(t, -1, netip.AddrPortFrom(plainVM.ip, 22).String(), reachTimeout) {
		t.Error("the host cannot reach a guest's port 22")
	}
	// Nor can the outside open connections to VMs.
	if connects(t, outside, netip.AddrPortFrom(plainVM.ip, 22).String(), dropTimeout) {
		t.Error("the outside host opened a connection to a VM")
	}
	must(t, l.m.Teardown(ctx))
}

func TestVMToVMAllowed(t *testing.T) {
	if !isolated(t) {
		return
	}
	l := newLab(t, Config{AllowVMToVM: true})
	a := l.startVM("vma", false)
	b := l.startVM("vmb", false)
	port, err := netlink.LinkByName(TapName("vma"))
	must(t, err)
	if pi, err := netlink.LinkGetProtinfo(port); err != nil || pi.Isolated {
		t.Errorf("port isolation with AllowVMToVM: %+v %v", pi, err)
	}
	addr := netip.AddrPortFrom(b.ip, 9000).String()
	serveTCP(t, b.ns, addr)
	if !connects(t, a.ns, addr, reachTimeout) {
		t.Error("VMs cannot reach each other with AllowVMToVM")
	}
	must(t, l.m.Teardown(context.Background()))
}
