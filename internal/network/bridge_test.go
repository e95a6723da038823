package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"banger/internal/api"
)

func TestSetupCreatesBridgeAndTable(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	m, _ := newTestManager(t, Config{})
	if err := m.Available(); err != nil {
		t.Fatalf("Available: %v", err)
	}
	for i := range 2 { // the second run must change nothing
		if err := m.Setup(ctx); err != nil {
			t.Fatalf("Setup #%d: %v", i+1, err)
		}
	}
	br, err := netlink.LinkByName("banger0")
	if err != nil {
		t.Fatal(err)
	}
	if br.Type() != "bridge" || br.Attrs().Alias != "banger" || br.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("bridge: type %s alias %q flags %v", br.Type(), br.Attrs().Alias, br.Attrs().Flags)
	}
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "172.30.0.1/24" {
		t.Errorf("bridge addresses %v (%v), want only 172.30.0.1/24", addrs, err)
	}
	if got := m.Subnet().String(); got != "172.30.0.0/24" {
		t.Errorf("Subnet = %s", got)
	}
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range chains {
		if c.Table.Name == "banger" {
			names = append(names, c.Name)
		}
	}
	if strings.Join(names, ",") != "forward,postrouting,input,egress-redirect" {
		t.Errorf("chains of inet banger: %v", names)
	}
}

func TestSetupRefusesLinksNotOurs(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	m, _ := newTestManager(t, Config{})
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "banger0"}, PeerName: "banger0p"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	err := m.Setup(ctx)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "is a veth, not a bridge") {
		t.Errorf("Setup over a veth: %v", err)
	}
	if err := netlink.LinkDel(veth); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "banger0"}}); err != nil {
		t.Fatal(err)
	}
	err = m.Setup(ctx)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "not created by banger") {
		t.Errorf("Setup over a foreign bridge: %v", err)
	}
	if err := m.Teardown(ctx); err == nil {
		t.Error("Teardown removed a bridge that is not banger's")
	}
	if _, err := netlink.LinkByName("banger0"); err != nil {
		t.Errorf("foreign bridge is gone: %v", err)
	}
}

func TestSetupDetectsRouteClash(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vpn0"}, PeerName: "vpn0p"}
	if err := netlink.LinkAdd(d); err != nil {
		t.Fatal(err)
	}
	if peer, err := netlink.LinkByName("vpn0p"); err != nil || netlink.LinkSetUp(peer) != nil {
		t.Fatalf("peer of vpn0: %v", err)
	}
	addr, _ := netlink.ParseAddr("172.30.0.10/16")
	if err := netlink.AddrAdd(d, addr); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(d); err != nil {
		t.Fatal(err)
	}

	m, _ := newTestManager(t, Config{})
	err := m.Setup(ctx)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "172.30.0.0/16 dev vpn0") {
		t.Fatalf("Setup with a clashing route: %v", err)
	}
	if _, err := netlink.LinkByName("banger0"); err == nil {
		t.Error("bridge left behind after a failed Setup")
	}

	auto, _ := newTestManager(t, Config{AutoSubnet: true})
	if err := auto.Setup(ctx); err != nil {
		t.Fatalf("Setup with AutoSubnet: %v", err)
	}
	got := auto.Subnet()
	clashing, _ := ipNetPrefix(addr.IPNet)
	if got.Overlaps(clashing) || !privateRange.Contains(got.Addr()) || got.Bits() != 24 {
		t.Errorf("AutoSubnet chose %s", got)
	}
	// Once the clash is gone, a restart still keeps the subnet the bridge
	// has (running VMs use it).
	if err := netlink.LinkDel(d); err != nil {
		t.Fatal(err)
	}
	again, _ := newTestManager(t, Config{AutoSubnet: true})
	if err := again.Setup(ctx); err != nil || again.Subnet() != got {
		t.Errorf("second Setup: %v, subnet %s, want %s", err, again.Subnet(), got)
	}
	if err := auto.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFindBridge(t *testing.T) {
	if !isolated(t) {
		return
	}
	if _, err := FindBridge(""); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("FindBridge before Setup: %v", err)
	}
	m, _ := newTestManager(t, Config{Bridge: "bangertest", Subnet: netip.MustParsePrefix("10.42.0.0/24")})
	must(t, m.Setup(context.Background()))
	info, err := FindBridge("")
	if err != nil || info.Name != "bangertest" || info.Gateway.String() != "10.42.0.1" || info.Subnet.String() != "10.42.0.0/24" {
		t.Errorf("FindBridge: %+v %v", info, err)
	}
	if _, err := FindBridge("banger0"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("FindBridge of another name: %v", err)
	}
}
