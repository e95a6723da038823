package network

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

func linkNames(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	must(t, err)
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

func natSetMembers(t *testing.T, m *Manager) []string {
	t.Helper()
	conn, err := nftables.New()
	must(t, err)
	addrs, err := natMembers(conn, m.nftTable())
	must(t, err)
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

func TestReconcile(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	m, ips := newTestManager(t, Config{})
	must(t, m.Setup(ctx))
	atts := map[string]Attachment{}
	for id, nat := range map[string]bool{"vma": true, "vmb": true, "vmc": false} {
		att, err := m.Attach(ctx, id, nat)
		must(t, err)
		atts[id] = att
	}
	// Leftovers of a crash: a bt* tap not yet labelled (its VM "stray" got
	// an address), an allocation of a deleted VM. Links that are not this
	// Manager's must survive, among them an unlabelled bt* tap of a VM it
	// does not know (another daemon's, being attached).
	_, err := createTap("btstray")
	must(t, err)
	_, err = ips.AllocateIP(ctx, "stray", poolOf(m.Subnet()))
	must(t, err)
	_, err = createTap("btforeign")
	must(t, err)
	_, err = createTap("tapother")
	must(t, err)
	must(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "btveth"}, PeerName: "btvethp"}))
	_, err = ips.AllocateIP(ctx, "gone", poolOf(m.Subnet()))
	must(t, err)
	// A running VM's tap that fell off the bridge.
	tapA, err := netlink.LinkByName(atts["vma"].Tap)
	must(t, err)
	must(t, netlink.LinkSetNoMaster(tapA))

	must(t, m.Reconcile(ctx, map[string]bool{"vma": false, "vmc": true}))

	names := linkNames(t)
	for _, keep := range []string{atts["vma"].Tap, atts["vmc"].Tap, "tapother", "btveth", "btforeign"} {
		if !slices.Contains(names, keep) {
			t.Errorf("%s was deleted", keep)
		}
	}
	for _, gone := range []string{atts["vmb"].Tap, "btstray"} {
		if slices.Contains(names, gone) {
			t.Errorf("%s was kept", gone)
		}
	}
	tapA, err = netlink.LinkByName(atts["vma"].Tap)
	must(t, err)
	br, err := netlink.LinkByName("banger0")
	must(t, err)
	if pi, err := netlink.LinkGetProtinfo(tapA); tapA.Attrs().MasterIndex != br.Attrs().Index || err != nil || !pi.Isolated {
		t.Errorf("vma's tap was not put back on the bridge isolated: master %d, %+v %v", tapA.Attrs().MasterIndex, pi, err)
	}
	all, _ := ips.ListIPs(ctx)
	if len(all) != 2 || all["vma"] != atts["vma"].Address.Addr() || all["vmc"] != atts["vmc"].Address.Addr() {
		t.Errorf("allocations after Reconcile: %v", all)
	}
	if got, want := natSetMembers(t, m), []string{atts["vmc"].Address.Addr().String()}; !slices.Equal(got, want) {
		t.Errorf("NAT set %v, want %v", got, want)
	}
	if got := ipForward(t); got != "1" {
		t.Errorf("ip_forward = %s with a NAT VM", got)
	}

	must(t, m.Reconcile(ctx, map[string]bool{}))
	if all, _ := ips.ListIPs(ctx); len(all) != 0 {
		t.Errorf("allocations with no VM: %v", all)
	}
	if got := natSetMembers(t, m); len(got) != 0 {
		t.Errorf("NAT set with no VM: %v", got)
	}
	if got := ipForward(t); got != "0" {
		t.Errorf("ip_forward = %s with no VM, want 0 restored", got)
	}
}

func TestTeardownLeavesNothing(t *testing.T) {
	if !isolated(t) {
		return
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft tool (apt-get install nftables)")
	}
	ruleset := func() string {
		out, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list ruleset: %v\n%s", err, out)
		}
		return string(out)
	}
	ctx := context.Background()
	rulesBefore, linksBefore, fwdBefore := ruleset(), linkNames(t), ipForward(t)

	m, _ := newTestManager(t, Config{})
	must(t, m.Setup(ctx))
	att, err := m.Attach(ctx, "leaky", true)
	must(t, err)
	during := ruleset()
	if !strings.Contains(during, "table inet banger") || !strings.Contains(during, att.Address.Addr().String()) {
		t.Fatalf("ruleset while a NAT VM is attached:\n%s", during)
	}
	t.Logf("ruleset with one NAT VM:\n%s", during)

	must(t, m.Teardown(ctx))
	if got := ruleset(); got != rulesBefore {
		t.Errorf("ruleset after Teardown:\n%s\nwant:\n%s", got, rulesBefore)
	}
	if got := linkNames(t); !slices.Equal(got, linksBefore) {
		t.Errorf("links after Teardown %v, want %v", got, linksBefore)
	}
	if got := ipForward(t); got != fwdBefore {
		t.Errorf("ip_forward after Teardown %s, want %s", got, fwdBefore)
	}
	must(t, m.Teardown(ctx)) // nothing left to remove is not an error
}
