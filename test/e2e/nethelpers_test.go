package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"banger/internal/network"
)

// tableOf is the nftables table (family inet) a daemon on bridge uses.
func tableOf(bridge string) string {
	if bridge == "banger0" {
		return "banger"
	}
	return "banger-" + bridge
}

// cleanupNet is d.cleanup for a networking test: it deletes every VM,
// stops the daemon and removes the daemon's own bridge and nftables table
// (and nothing of other daemons').
func cleanupNet(d *daemon) {
	if d.t.Failed() {
		if log, err := os.ReadFile(filepath.Join(d.dir, "bangerd.out")); err == nil {
			d.t.Logf("bangerd log:\n%s", log)
		}
	}
	d.run("vm", "delete", "--all", "--force")
	d.stop()
	exec.Command("ip", "link", "del", d.bridge).Run()
	exec.Command("nft", "delete", "table", "inet", tableOf(d.bridge)).Run()
	exec.Command("nft", "delete", "table", "netdev", tableOf(d.bridge)).Run()
	os.RemoveAll(d.dir)
}

// outside is a fake host beyond the machine: a network namespace joined to
// the host's root namespace by a veth in a test-only subnet. It routes the
// VM subnet back through the host, so that only banger's rules (never a
// missing route) keep a VM without NAT from reaching it.
type outside struct {
	ns, hostIf   string
	hostIP, addr netip.Addr
	peers        chan netip.Addr // remote address of each TCP connection
}

const outsidePort = 8080
const outsideGreeting = "hello from outside"

func newOutside(t *testing.T, vmSubnet string) *outside {
	t.Helper()
	n := os.Getpid() % 10000
	third := os.Getpid() % 250
	o := &outside{ns: fmt.Sprintf("bgo%d", n), hostIf: fmt.Sprintf("bgv%d", n),
		hostIP: netip.AddrFrom4([4]byte{198, 18, byte(third), 1}),
		addr:   netip.AddrFrom4([4]byte{198, 18, byte(third), 2}), peers: make(chan netip.Addr, 16)}
	peer := o.hostIf + "p"
	t.Cleanup(o.close)
	for _, c := range [][]string{
		{"netns", "add", o.ns},
		{"link", "add", o.hostIf, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", o.ns},
		{"addr", "add", o.hostIP.String() + "/30", "dev", o.hostIf},
		{"link", "set", o.hostIf, "up"},
		{"-n", o.ns, "addr", "add", o.addr.String() + "/30", "dev", peer},
		{"-n", o.ns, "link", "set", peer, "up"},
		{"-n", o.ns, "link", "set", "lo", "up"},
		{"-n", o.ns, "route", "add", vmSubnet, "via", o.hostIP.String()},
	} {
		ipCmd(t, c...)
	}
	o.listen(t)
	return o
}

// close removes the outside host (its veth pair goes with the namespace).
func (o *outside) close() {
	exec.Command("ip", "link", "del", o.hostIf).Run()
	exec.Command("ip", "netns", "del", o.ns).Run()
}

func ipCmd(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// listen serves TCP in the outside namespace: each connection gets a
// greeting and its remote address goes to o.peers.
func (o *outside) listen(t *testing.T) {
	t.Helper()
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result)
	go func() {
		// The thread enters the namespace and is dropped when the
		// goroutine ends locked; the socket stays in the namespace.
		runtime.LockOSThread()
		h, err := netns.GetFromName(o.ns)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err != nil {
			ch <- result{nil, err}
			return
		}
		l, err := net.Listen("tcp", netip.AddrPortFrom(o.addr, outsidePort).String())
		ch <- result{l, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in %s: %v", o.ns, r.err)
	}
	t.Cleanup(func() { r.l.Close() })
	go func() {
		for {
			c, err := r.l.Accept()
			if err != nil {
				return
			}
			if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
				select {
				case o.peers <- ap.Addr():
				default:
				}
			}
			fmt.Fprintln(c, outsideGreeting)
			c.Close()
		}
	}()
}

// reaches reports whether VM name opens a TCP connection to the outside
// host (busybox nc in the guest; a dropped SYN times out after 3 s).
func (o *outside) reaches(t *testing.T, d *daemon, name string) bool {
	t.Helper()
	out, errOut, code := d.run("vm", "exec", name, "--", "nc", "-w", "3", o.addr.String(), fmt.Sprint(outsidePort))
	if code == 0 && strings.Contains(out, outsideGreeting) {
		return true
	}
	t.Logf("%s -> outside: exit %d %q %q", name, code, out, errOut)
	return false
}

// lookupA asks banger's DNS server on the bridge address for name.
func lookupA(t *testing.T, gw, name string) (addrs []string, rcode int) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
	var r *dns.Msg
	var err error
	for range 3 {
		if r, _, err = c.Exchange(m, net.JoinHostPort(gw, "53")); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("dns query %s @%s: %v", name, gw, err)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			addrs = append(addrs, a.A.String())
		}
	}
	return addrs, r.Rcode
}

// linkNames lists the host's links (`ip -br link`, names only).
func linkNames(t *testing.T) []string {
	t.Helper()
	var names []string
	sc := bufio.NewScanner(strings.NewReader(ipCmd(t, "-br", "link")))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			names = append(names, strings.SplitN(f[0], "@", 2)[0])
		}
	}
	slices.Sort(names)
	return names
}

// bridgePorts lists the links enslaved to bridge.
func bridgePorts(t *testing.T, bridge string) []string {
	t.Helper()
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(ipCmd(t, "-br", "link", "show", "master", bridge)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, strings.SplitN(f[0], "@", 2)[0])
		}
	}
	slices.Sort(names)
	return names
}

func nftRuleset(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	return string(out)
}

// nftTable prints the daemon's table, or "" when it does not exist.
func nftTable(t *testing.T, bridge string) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "inet", tableOf(bridge)).CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// natSetLine is the elements line of the table's nat_vms set ("" when
// the set is empty).
func natSetLine(table string) string {
	for _, l := range strings.Split(table, "\n") {
		if strings.Contains(l, "elements =") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// nftTables lists "family name" of every table in a ruleset.
func nftTables(ruleset string) []string {
	var out []string
	for _, l := range strings.Split(ruleset, "\n") {
		if rest, ok := strings.CutPrefix(l, "table "); ok {
			out = append(out, strings.TrimSuffix(rest, " {"))
		}
	}
	slices.Sort(out)
	return out
}

// ipForwardPrev is where the daemons of the host record ip_forward while
// one of them has it on.
func ipForwardPrev(*daemon) string {
	return filepath.Join(network.DefaultHostRunDir, "ip_forward.prev")
}

// firstHost is the first VM address of a subnet (after the gateway).
func firstHost(t testing.TB, subnet string) (gw, first string) {
	t.Helper()
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		t.Fatal(err)
	}
	g := p.Masked().Addr().Next()
	return g.String(), g.Next().String()
}

// newNetDaemon is newDaemon for a test that needs bridge networking: when
// the harness's subnet clashes with a route on this machine (another test
// daemon's bridge), it restarts the daemon on a free /24.
func newNetDaemon(t *testing.T) *daemon {
	t.Helper()
	d := newDaemon(t)
	bridgeUp := func() bool {
		gw, _ := firstHost(t, d.subnet)
		out, _ := exec.Command("ip", "-4", "-br", "addr", "show", "dev", d.bridge).Output()
		return strings.Contains(string(out), gw+"/")
	}
	if bridgeUp() {
		return d
	}
	d.stop()
	d.subnet = freeSubnet(t)
	t.Logf("harness subnet clashed with a host route; using %s", d.subnet)
	d.start(t)
	if !bridgeUp() {
		cleanupNet(d)
		t.Fatalf("bridge %s did not come up on %s (see the daemon log)", d.bridge, d.subnet)
	}
	return d
}

// freeSubnet finds a 10.x.y.0/24 that no route of any table overlaps.
func freeSubnet(t testing.TB) string {
	t.Helper()
	var used []netip.Prefix
	for _, l := range strings.Split(ipCmd(t, "-4", "-o", "route", "show", "table", "all"), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == "local" || f[0] == "broadcast" || f[0] == "unreachable") && len(f) > 1 {
			f = f[1:]
		}
		if len(f) == 0 {
			continue
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil {
			used = append(used, p)
		} else if a, err := netip.ParseAddr(f[0]); err == nil {
			used = append(used, netip.PrefixFrom(a, 32))
		}
	}
	for second := 150; second < 200; second++ {
		for third := 1 + os.Getpid()%200; third < 255; third++ {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(second), byte(third), 0}), 24)
			if !slices.ContainsFunc(used, p.Overlaps) {
				return p.String()
			}
		}
	}
	t.Fatal("no free 10.x.y.0/24 on this machine")
	return ""
}

// createNATPair creates two busybox VMs at once on d: withNAT with --nat,
// without it plain; it fails the test if either create fails.
func createNATPair(t *testing.T, d *daemon, withNAT, without string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]string, 2)
	for i, args := range [][]string{{"--name", withNAT, "--nat"}, {"--name", without}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args = append([]string{"vm", "create", "--image", "bb", "--memory", "256", "--vcpus", "1"}, args...)
			if o, e, code := d.run(args...); code != 0 {
				errs[i] = o + e
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Fatalf("vm create: %s", e)
		}
	}
}
