package e2e

import (
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
)

// TestHostileNetwork boots two VMs, "good" with NAT and "evil" without,
// on a daemon of its own whose DNS forwards to a resolver in a fake
// outside host, and lets evil, as root, try what a hostile guest would:
// send with good's source address, claim good's and the gateway's
// addresses in ARP, tunnel through DNS. VM-to-VM traffic is allowed on
// this daemon, so that no port isolation hides a spoofed ARP from good:
// only the tap guards stand in the way. Good keeps reaching the outside
// and resolving names throughout.
func TestHostileNetwork(t *testing.T) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := newHostileNetDaemon(t, "BANGER_ALLOW_VM_TO_VM=1", "BANGER_RESOLV_CONF="+resolv)
	defer cleanupNet(d)
	gw, _ := firstHost(t, d.subnet)
	out := newOutside(t, d.subnet)
	seen := hostileResolver(t, out)
	// The daemon reads the file again when it changes.
	if err := os.WriteFile(resolv, []byte("nameserver "+out.addr.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")

	createNATPair(t, d, "good", "evil")
	good := showVM(t, d, "good")
	goodMAC := strings.TrimSpace(d.must(t, "vm", "exec", "good", "--", "cat", "/sys/class/net/eth0/address"))
	evilMAC := strings.TrimSpace(d.must(t, "vm", "exec", "evil", "--", "cat", "/sys/class/net/eth0/address"))
	if !out.reaches(t, d, "good") {
		t.Fatal("good (--nat) cannot reach the outside host")
	}
	if out.reaches(t, d, "evil") {
		t.Fatal("evil (no NAT) reached the outside host")
	}

	// Spoofed source: evil sends a UDP query to the outside host from
	// good's address. Good's own query afterwards marks the point by which
	// evil's would have arrived.
	o, e, code := d.run("vm", "exec", "evil", "--", "sh", "-c", fmt.Sprintf(
		"ip addr add %[1]s/32 dev eth0 && ip route add %[2]s/32 via %[3]s src %[1]s && busybox nslookup spoofed-source.test %[2]s; "+
			"ip route del %[2]s/32; ip addr del %[1]s/32 dev eth0", good.GuestIP, out.addr, gw))
	t.Logf("evil, as good, asks the outside host directly: exit %d\n%s%s", code, o, e)
	o = d.must(t, "vm", "exec", "good", "--", "busybox", "nslookup", "after-spoof.test", out.addr.String())
	if !strings.Contains(o, "192.0.2.77") {
		t.Errorf("good asking the outside host directly: %s", o)
	}
	if got := seen(); !slices.Contains(got, "after-spoof.test.") || hasPrefix(got, "spoofed-source.") {
		t.Errorf("outside resolver saw %v: want good's query and none of evil's forged ones", got)
	}

	// DNS tunnel: banger's DNS refuses evil any name outside .vm and asks
	// no one; good's names are forwarded.
	o, e, _ = d.run("vm", "exec", "evil", "--", "busybox", "nslookup", "tunnel-probe.test")
	if !strings.Contains(o+e, "REFUSED") || strings.Contains(o, "192.0.2.77") {
		t.Errorf("evil resolving tunnel-probe.test through banger: want REFUSED\n%s%s", o, e)
	}
	o = d.must(t, "vm", "exec", "evil", "--", "busybox", "nslookup", "good.vm")
	if !strings.Contains(o, good.GuestIP) {
		t.Errorf("evil resolving good.vm: want %s\n%s", good.GuestIP, o)
	}
	o = d.must(t, "vm", "exec", "good", "--", "busybox", "nslookup", "nat-resolves.test")
	if !strings.Contains(o, "192.0.2.77") {
		t.Errorf("good resolving nat-resolves.test through banger: want the outside's answer 192.0.2.77\n%s", o)
	}
	if got := seen(); !slices.Contains(got, "nat-resolves.test.") || hasPrefix(got, "tunnel-probe.") {
		t.Errorf("outside resolver saw %v: want good's forwarded query and none of evil's", got)
	}

	// ARP spoofing: evil claims good's address (to the host) and the
	// gateway's (to good). The host's SSH to good (vm exec) filled both
	// entries before. A poisoned entry heals itself once traffic through
	// it goes unanswered, so both are sampled while evil is at it: no
	// sample may show evil's MAC.
	if got := hostNeighMAC(t, d.bridge, good.GuestIP); got != goodMAC {
		t.Fatalf("host's neighbour entry for good: %q, want %s", got, goodMAC)
	}
	gwMAC := guestNeighMAC(t, d, "good", gw)
	if gwMAC == "" || gwMAC == evilMAC {
		t.Fatalf("good's neighbour entry for the gateway: %q", gwMAC)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		guestSamples := make(chan string, 1)
		go func() {
			o, e, code := d.run("vm", "exec", "good", "--", "sh", "-c", fmt.Sprintf(
				"rm -f /tmp/neigh; i=0; while [ $i -lt 60 ]; do ip neigh show %s >> /tmp/neigh; i=$((i+1)); sleep 0.2; done; cat /tmp/neigh", gw))
			if code != 0 {
				o = fmt.Sprintf("sampler exit %d: %s\n%s", code, e, o)
			}
			guestSamples <- o
		}()
		stopHost := make(chan struct{})
		hostSamples := make(chan []string, 1)
		go func() {
			var macs []string
			for {
				select {
				case <-stopHost:
					hostSamples <- macs
					return
				case <-time.After(50 * time.Millisecond):
					o, _ := exec.Command("ip", "neigh", "show", good.GuestIP, "dev", d.bridge).Output()
					macs = append(macs, lladdr(string(o)))
				}
			}
		}()
		o, e, code = d.run("vm", "exec", "evil", "--", "sh", "-c", fmt.Sprintf(
			"echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind; "+
				"busybox arping -U -c 2 -I eth0 -s %[1]s %[1]s; busybox arping -A -c 2 -I eth0 -s %[1]s %[2]s; "+
				"busybox arping -U -c 2 -I eth0 -s %[2]s %[2]s; busybox arping -A -c 2 -I eth0 -s %[2]s %[1]s", good.GuestIP, gw))
		t.Logf("evil's gratuitous ARP for good's address and the gateway's: exit %d\n%s%s", code, o, e)
		close(stopHost)
		if got := <-hostSamples; len(got) == 0 || slices.ContainsFunc(got, func(mac string) bool { return mac != "" && mac != goodMAC }) {
			t.Errorf("host's neighbour entry for good during evil's ARP: %v, want only good's %s (evil is %s)", slices.Compact(got), goodMAC, evilMAC)
		}
		got := <-guestSamples
		if strings.Contains(got, evilMAC) {
			t.Errorf("good's neighbour entry for the gateway during evil's ARP, want only %s (evil is %s):\n%s", gwMAC, evilMAC, got)
			break
		}
		if strings.Count(got, gwMAC) >= 10 {
			break
		}
		// The sampler saw too little to prove anything (a busy host): again.
		t.Logf("attempt %d: good's samples of the gateway entry are too few:\n%s", attempt, got)
		if attempt == 3 {
			t.Errorf("good's neighbour entry for the gateway was not sampled during evil's ARP in 3 attempts")
		}
	}
	if got := guestNeighMAC(t, d, "good", gw); got != gwMAC {
		t.Errorf("good's neighbour entry for the gateway is %q after evil's ARP, want %s", got, gwMAC)
	}

	// Good still reaches the outside; deleting the VMs removes their guards.
	if !out.reaches(t, d, "good") {
		t.Error("good cannot reach the outside host any more")
	}
	d.must(t, "vm", "delete", "--force", "good", "evil")
	if o, err := exec.Command("nft", "list", "table", "netdev", tableOf(d.bridge)).CombinedOutput(); err != nil || strings.Contains(string(o), "chain ") {
		t.Errorf("netdev table after the VMs were deleted: %v\n%s", err, o)
	}
}

func hasPrefix(names []string, prefix string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, prefix) })
}

// newHostileNetDaemon is newNetDaemon with extra environment.
func newHostileNetDaemon(t testing.TB, env ...string) *daemon {
	t.Helper()
	d := newDaemonEnv(t, env...)
	gw, _ := firstHost(t, d.subnet)
	up := func() bool {
		o, _ := exec.Command("ip", "-4", "-br", "addr", "show", "dev", d.bridge).Output()
		return strings.Contains(string(o), gw+"/")
	}
	if up() {
		return d
	}
	d.stop()
	d.subnet = freeSubnet(t)
	gw, _ = firstHost(t, d.subnet)
	d.start(t)
	if !up() {
		cleanupNet(d)
		t.Fatalf("bridge %s did not come up on %s", d.bridge, d.subnet)
	}
	return d
}

// hostileResolver answers DNS on the outside host (UDP port 53) with
// 192.0.2.77 for every name; the returned function lists the names asked
// so far.
func hostileResolver(t *testing.T, o *outside) func() []string {
	t.Helper()
	type result struct {
		pc  net.PacketConn
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread() // dropped with the goroutine; the socket stays in the namespace
		h, err := netns.GetFromName(o.ns)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err != nil {
			ch <- result{nil, err}
			return
		}
		pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(o.addr, 53).String())
		ch <- result{pc, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("dns listener in %s: %v", o.ns, r.err)
	}
	var mu sync.Mutex
	var names []string
	srv := &dns.Server{PacketConn: r.pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			mu.Lock()
			names = append(names, strings.ToLower(question.Name))
			mu.Unlock()
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(192, 0, 2, 77),
				})
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown(); r.pc.Close() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(names)
	}
}

// hostNeighMAC is the host's neighbour entry for ip on bridge ("" when
// none).
func hostNeighMAC(t *testing.T, bridge, ip string) string {
	t.Helper()
	return lladdr(ipCmd(t, "neigh", "show", ip, "dev", bridge))
}

// guestNeighMAC is VM name's neighbour entry for ip ("" when none).
func guestNeighMAC(t *testing.T, d *daemon, name, ip string) string {
	t.Helper()
	return lladdr(d.must(t, "vm", "exec", name, "--", "ip", "neigh", "show", ip))
}

func lladdr(neigh string) string {
	f := strings.Fields(neigh)
	if i := slices.Index(f, "lladdr"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}
