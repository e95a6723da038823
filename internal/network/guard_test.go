package network

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
)

// The guards and the forward chain as nft prints them: every binding and
// drop the design promises is there.
func TestRulesetBindsTaps(t *testing.T) {
	if !isolated(t) {
		return
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft tool (apt-get install nftables)")
	}
	nft := func(args ...string) string {
		out, err := exec.Command("nft", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ctx := context.Background()
	m, _ := newTestManager(t, Config{})
	must(t, m.Setup(ctx))
	plain, err := m.Attach(ctx, "plain", false)
	must(t, err)
	natted, err := m.Attach(ctx, "natted", true)
	must(t, err)
	br := bridgeMAC("banger0").String()

	chain := nft("list", "chain", "netdev", "banger", "guard-"+plain.Tap)
	t.Logf("guard of a VM without NAT:\n%s", chain)
	ip := plain.Address.Addr().String()
	for _, want := range []string{
		`hook ingress device "` + plain.Tap + `"`,
		"policy drop;",
		"ether saddr != " + plain.MAC + " drop",
		"ether daddr != " + br,
		"arp saddr ether " + plain.MAC + " arp saddr ip " + ip + " accept",
		"ip saddr " + ip + " ip daddr 172.30.0.0/24 accept",
	} {
		if !strings.Contains(chain, want) {
			t.Errorf("guard of %s lacks %q", plain.Tap, want)
		}
	}
	if strings.Count(chain, "accept") != 2 {
		t.Errorf("guard of a VM without NAT accepts more than its ARP and its subnet traffic:\n%s", chain)
	}
	chain = nft("list", "chain", "netdev", "banger", "guard-"+natted.Tap)
	if !strings.Contains(chain, "ip saddr "+natted.Address.Addr().String()+" accept") {
		t.Errorf("guard of a NAT VM lets nothing out of the subnet:\n%s", chain)
	}

	fwd := nft("list", "chain", "inet", "banger", "forward")
	t.Logf("forward chain:\n%s", fwd)
	for _, want := range []string{
		"policy drop;",
		`iifname != "banger0" oifname != "banger0" accept`,
		`oifname "banger0" ct state established,related accept`,
		`iifname "banger0" ip saddr @nat_vms accept`,
	} {
		if !strings.Contains(fwd, want) {
			t.Errorf("forward chain lacks %q", want)
		}
	}
	if strings.Contains(fwd, "\n\t\tct state established,related accept") {
		t.Error("forward chain accepts established traffic of every interface")
	}

	// NAT switched on rewrites the tap's guard; Detach removes it.
	must(t, m.SetNAT(ctx, "plain", true))
	if chain := nft("list", "chain", "netdev", "banger", "guard-"+plain.Tap); !strings.Contains(chain, "ip saddr "+ip+" accept") {
		t.Errorf("guard after SetNAT on:\n%s", chain)
	}
	must(t, m.Detach(ctx, "plain"))
	if table := nft("list", "table", "netdev", "banger"); strings.Contains(table, plain.Tap) {
		t.Errorf("guard left after Detach:\n%s", table)
	}
	must(t, m.Teardown(ctx))
}

// A guest without NAT forging the source of a guest with NAT (address, or
// address and MAC), or sending to a link-local group address that the
// bridge hands to the port device itself, gets nothing past its tap. The
// guest with NAT, sending the same way, does.
func TestGuardStopsSpoofedSource(t *testing.T) {
	if !isolated(t) {
		return
	}
	l := newLab(t, Config{})
	gw := gatewayOf(l.m.Subnet())
	outside := outsideHost(t, l.m.Subnet())
	out := listenUDP(t, outside, "10.99.0.2:7777")
	host := listenUDP(t, -1, "0.0.0.0:7778")
	a := l.startVM("natvm", true)
	b := l.startVM("plainvm", false)
	pa, pb := openRaw(t, a.ns, TapName("natvm")), openRaw(t, b.ns, TapName("plainvm"))
	br := bridgeMAC(l.m.cfg.Bridge)
	far := netip.MustParseAddr("10.99.0.2")
	lldp := net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}

	sendInOrder(t,
		rawSend{pb, ethFrame(br, pb.mac, 0x0800, udp4(a.ip, far, 4000, 7777, []byte("spoofed address")))},
		rawSend{pb, ethFrame(br, pa.mac, 0x0800, udp4(a.ip, far, 4000, 7777, []byte("spoofed address and mac")))},
		rawSend{pb, ethFrame(br, pb.mac, 0x0800, udp4(b.ip, far, 4000, 7777, []byte("no nat")))},
		rawSend{pb, ethFrame(lldp, pb.mac, 0x0800, udp4(b.ip, gw, 4000, 7778, []byte("via the port device")))},
		rawSend{pa, ethFrame(br, pa.mac, 0x0800, udp4(a.ip, far, 4000, 7777, []byte("from the nat vm")))},
	)
	if got := readUDP(out, reachTimeout); got != "from the nat vm" {
		t.Errorf("the outside host first received %q, want the NAT VM's datagram", got)
	}
	// Frames are handled in the order sent: had the forged ones passed,
	// they would be queued already.
	if got := readUDP(host, time.Millisecond); got != "" {
		t.Errorf("a host service received %q from a VM through its port device", got)
	}
	if got := readUDP(out, time.Millisecond); got != "" {
		t.Errorf("the outside host then received %q", got)
	}
	must(t, l.m.Teardown(context.Background()))
}

// With VM-to-VM traffic allowed (no port isolation), a guest claiming in
// ARP the address of another VM or of the gateway poisons no neighbour
// table: not the host's, not the other VM's.
func TestGuardStopsARPSpoofing(t *testing.T) {
	if !isolated(t) {
		return
	}
	l := newLab(t, Config{AllowVMToVM: true})
	gw := gatewayOf(l.m.Subnet())
	a := l.startVM("victim", false)
	b := l.startVM("spoofer", false)
	pa, pb := openRaw(t, a.ns, TapName("victim")), openRaw(t, b.ns, TapName("spoofer"))
	br := bridgeMAC(l.m.cfg.Bridge)
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zero := make(net.HardwareAddr, 6)

	// The host learns the victim's MAC and the victim the gateway's (from
	// the host's ARP request).
	_ = connects(t, -1, netip.AddrPortFrom(a.ip, 9).String(), dropTimeout)
	if got := neighMAC(t, -1, l.m.cfg.Bridge, a.ip); got != pa.mac.String() {
		t.Fatalf("host's neighbour entry for the victim: %q, want %s", got, pa.mac)
	}
	if got := neighMAC(t, a.ns, "g"+TapName("victim"), gw); got != br.String() {
		t.Fatalf("victim's neighbour entry for the gateway: %q, want %s", got, br)
	}

	sendInOrder(t,
		// Gratuitous ARP: "the victim's address is at my MAC".
		rawSend{pb, ethFrame(bcast, pb.mac, 0x0806, arpPacket(1, pb.mac, a.ip, zero, a.ip))},
		// A reply to the host saying the same.
		rawSend{pb, ethFrame(br, pb.mac, 0x0806, arpPacket(2, pb.mac, a.ip, br, gw))},
		// Gratuitous ARP: "the gateway is at my MAC".
		rawSend{pb, ethFrame(bcast, pb.mac, 0x0806, arpPacket(1, pb.mac, gw, zero, gw))},
		// ARP with an honest sender but a foreign Ethernet source.
		rawSend{pb, ethFrame(bcast, pa.mac, 0x0806, arpPacket(1, pb.mac, b.ip, zero, gw))},
		// An honest request, answered by the victim once it has handled
		// every frame above.
		rawSend{pb, ethFrame(bcast, pb.mac, 0x0806, arpPacket(1, pb.mac, b.ip, zero, a.ip))},
	)
	awaitARPReply(t, pb, pa.mac, a.ip)
	if got := neighMAC(t, -1, l.m.cfg.Bridge, a.ip); got != pa.mac.String() {
		t.Errorf("host's neighbour entry for the victim is %q after the spoofing, want %s", got, pa.mac)
	}
	if got := neighMAC(t, a.ns, "g"+TapName("victim"), gw); got != br.String() {
		t.Errorf("victim's neighbour entry for the gateway is %q after the spoofing, want %s", got, br)
	}
	must(t, l.m.Teardown(context.Background()))
}

// guardState maps each guard chain of m's netdev table to whether it lets
// its VM out of the subnet (NAT).
func guardState(t *testing.T, m *Manager) map[string]bool {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "netdev", m.Table()).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table netdev %s: %v\n%s", m.Table(), err, out)
	}
	state := map[string]bool{}
	chain := ""
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if name, ok := strings.CutPrefix(l, "chain "+guardChainPrefix); ok {
			chain = strings.TrimSuffix(name, " {")
			state[chain] = false
		} else if chain != "" && strings.HasPrefix(l, "ip saddr ") && strings.HasSuffix(l, " accept") && !strings.Contains(l, "daddr") {
			state[chain] = true
		}
	}
	return state
}

// A daemon restart (Setup again) keeps every tap guarded; Reconcile leaves
// exactly the running VMs' taps, guarded with their NAT setting, and a tap
// on the bridge that no VM owns gets a guard that lets nothing through.
func TestGuardsFollowSetupAndReconcile(t *testing.T) {
	if !isolated(t) {
		return
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft tool (apt-get install nftables)")
	}
	ctx := context.Background()
	m, _ := newTestManager(t, Config{})
	must(t, m.Setup(ctx))
	taps := map[string]string{}
	for id, nat := range map[string]bool{"vma": true, "vmb": false, "vmc": false} {
		att, err := m.Attach(ctx, id, nat)
		must(t, err)
		taps[id] = att.Tap
	}
	want := map[string]bool{taps["vma"]: true, taps["vmb"]: false, taps["vmc"]: false}
	if got := guardState(t, m); !maps.Equal(got, want) {
		t.Fatalf("guards after Attach %v, want %v", got, want)
	}
	// A tap left unlabelled on the bridge (by hand, or by a crash).
	stray, err := createTap("btstray")
	must(t, err)
	br, err := netlink.LinkByName("banger0")
	must(t, err)
	must(t, netlink.LinkSetMaster(stray, br))

	must(t, m.Setup(ctx))
	want["btstray"] = false
	if got := guardState(t, m); !maps.Equal(got, want) {
		t.Errorf("guards after a second Setup %v, want %v", got, want)
	}
	out, err := exec.Command("nft", "list", "chain", "netdev", m.Table(), guardChainPrefix+"btstray").CombinedOutput()
	if err != nil || strings.Contains(string(out), "accept") {
		t.Errorf("guard of a tap no VM owns accepts something: %v\n%s", err, out)
	}

	must(t, m.Reconcile(ctx, map[string]bool{"vmb": true, "vmc": false}))
	want = map[string]bool{taps["vmb"]: true, taps["vmc"]: false}
	if got := guardState(t, m); !maps.Equal(got, want) {
		t.Errorf("guards after Reconcile %v, want %v", got, want)
	}
	must(t, m.Teardown(ctx))
	if out, err := exec.Command("nft", "list", "tables").CombinedOutput(); err != nil || strings.Contains(string(out), "banger") {
		t.Errorf("tables after Teardown: %v\n%s", err, out)
	}
}

// accepts counts the rules of a guard that accept.
func accepts(rules [][]expr.Any) int {
	n := 0
	for _, r := range rules {
		if v, ok := r[len(r)-1].(*expr.Verdict); ok && v.Kind == expr.VerdictAccept {
			n++
		}
	}
	return n
}

// Rule generation without nftables: a tap with no binding accepts
// nothing; NAT adds exactly one accept; every rule first checks the
// device is Ethernet (the payload offsets assume it).
func TestGuardRulesShape(t *testing.T) {
	n := guardNet{subnet: netip.MustParsePrefix("172.30.0.0/24"), bridgeMAC: bridgeMAC("banger0")}
	tapMAC := net.HardwareAddr{0x02, 1, 2, 3, 4, 5}
	if got := accepts(guardRules(guard{tap: "btx", tapMAC: tapMAC}, n)); got != 0 {
		t.Errorf("unbound guard accepts in %d rules", got)
	}
	g := guard{tap: "btx", tapMAC: tapMAC, mac: MACFor("x"), ip: netip.MustParseAddr("172.30.0.9")}
	plain := guardRules(g, n)
	g.nat = true
	natted := guardRules(g, n)
	if accepts(plain) != 2 || accepts(natted) != 3 || len(natted) != len(plain)+1 {
		t.Errorf("accepting rules: %d without NAT, %d with; want 2 and 3", accepts(plain), accepts(natted))
	}
	for _, r := range natted {
		if m, ok := r[0].(*expr.Meta); !ok || m.Key != expr.MetaKeyIIFTYPE {
			t.Errorf("rule does not start with the Ethernet check: %#v", r[0])
		}
	}
	n.allowVMToVM = true
	found := false
	for _, r := range guardRules(g, n) {
		for _, e := range r {
			if c, ok := e.(*expr.Cmp); ok && c.Op == expr.CmpOpEq && string(c.Data) == string(tapMAC) {
				found = true
			}
		}
	}
	if !found {
		t.Error("with VM-to-VM allowed, frames to the tap's own MAC are not dropped")
	}
}
