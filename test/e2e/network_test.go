package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestNetwork checks bridge networking with real VMs on a daemon of its
// own: NAT on and off (live) to a fake outside host in a namespace, VM to
// VM isolation, DNS names, a daemon restart, and that deleting the VMs
// leaves no tap, NAT member or address behind.
func TestNetwork(t *testing.T) {
	linksBefore, rulesBefore := linkNames(t), nftRuleset(t)
	d := newNetDaemon(t)
	defer cleanupNet(d)
	table := tableOf(d.bridge)
	gw, first := firstHost(t, d.subnet)
	out := newOutside(t, d.subnet)
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")

	createNATPair(t, d, "n1", "n2")
	n1, n2 := showVM(t, d, "n1"), showVM(t, d, "n2")
	if n1.TapDevice == "" || n2.TapDevice == "" || n1.GuestIP == n2.GuestIP {
		t.Fatalf("vms not on the bridge: %+v %+v", n1, n2)
	}
	if got := bridgePorts(t, d.bridge); !slices.Equal(got, sorted(n1.TapDevice, n2.TapDevice)) {
		t.Fatalf("bridge %s ports %v, want the two taps", d.bridge, got)
	}

	// NAT: n1 reaches the outside (masqueraded as the host), n2 does not.
	if !out.reaches(t, d, "n1") {
		t.Fatal("n1 (--nat) cannot reach the outside host")
	}
	if src := <-out.peers; src != out.hostIP {
		t.Errorf("outside host saw %s, want the host's %s (masquerade)", src, out.hostIP)
	}
	if out.reaches(t, d, "n2") {
		t.Error("n2 (no NAT) reached the outside host")
	}

	// Flipping NAT applies live.
	d.must(t, "vm", "set", "n2", "--nat=true")
	d.must(t, "vm", "set", "n1", "--nat=false")
	if !out.reaches(t, d, "n2") {
		t.Error("n2 cannot reach the outside after vm set --nat=true")
	}
	if out.reaches(t, d, "n1") {
		t.Error("n1 still reaches the outside after vm set --nat=false")
	}
	if s := natSetLine(nftTable(t, d.bridge)); !strings.Contains(s, n2.GuestIP) || strings.Contains(s, n1.GuestIP) {
		t.Errorf("nat_vms after the flip: %q, want only n2 %s", s, n2.GuestIP)
	}

	// VM to VM is blocked, while the host reaches the VMs.
	if _, _, code := d.run("vm", "exec", "n1", "--", "ping", "-c", "1", "-W", "2", n2.GuestIP); code == 0 {
		t.Error("n1 pinged n2")
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(n2.GuestIP, "22"), 10*time.Second); err != nil {
		t.Errorf("the host cannot reach n2's port 22: %v", err)
	} else {
		c.Close()
	}

	// DNS on the bridge address; ports and ssh-config use the name.
	checkDNS(t, gw, map[string]string{"n1.vm": n1.GuestIP, "n2.vm": n2.GuestIP})
	checkNamesInCLI(t, d)

	// A daemon restart keeps the VMs and rebuilds the same network state.
	d.stop()
	if !pidAlive(n1.PID) || !pidAlive(n2.PID) {
		t.Fatal("daemon stop killed a vm")
	}
	d.start(t)
	for _, n := range []string{"n1", "n2"} {
		if o := d.must(t, "vm", "exec", n, "--", "hostname"); strings.TrimSpace(o) != n {
			t.Errorf("%s after restart: hostname %q", n, o)
		}
	}
	if got := bridgePorts(t, d.bridge); !slices.Equal(got, sorted(n1.TapDevice, n2.TapDevice)) {
		t.Errorf("bridge ports after restart %v", got)
	}
	if s := natSetLine(nftTable(t, d.bridge)); !strings.Contains(s, n2.GuestIP) || strings.Contains(s, n1.GuestIP) {
		t.Errorf("nat_vms after restart: %q, want only n2 %s", s, n2.GuestIP)
	}
	if !out.reaches(t, d, "n2") || out.reaches(t, d, "n1") {
		t.Error("NAT changed across the daemon restart")
	}
	checkDNS(t, gw, map[string]string{"n1.vm": n1.GuestIP})

	// Deleting the VMs leaves no tap, NAT member, rule or address.
	d.must(t, "vm", "delete", "--force", "n1", "n2")
	for _, tap := range []string{n1.TapDevice, n2.TapDevice} {
		if exec.Command("ip", "link", "show", tap).Run() == nil {
			t.Errorf("tap %s left after delete", tap)
		}
	}
	tb := nftTable(t, d.bridge)
	if tb == "" || natSetLine(tb) != "" || strings.Contains(tb, n1.GuestIP) || strings.Contains(tb, n2.GuestIP) {
		t.Errorf("table inet %s after delete:\n%s", table, tb)
	}
	if _, err := os.Stat(ipForwardPrev(d)); !os.IsNotExist(err) {
		t.Errorf("ip forwarding not restored with no NAT VM (%s: %v)", ipForwardPrev(d), err)
	}
	var list []vmRecord
	d.mustJSON(t, &list, "vm", "list")
	if len(list) != 0 {
		t.Errorf("vm list after delete: %+v", list)
	}
	if addrs, _ := lookupA(t, gw, "n1.vm"); len(addrs) != 0 {
		t.Errorf("n1.vm still resolves to %v", addrs)
	}
	d.must(t, "vm", "create", "--name", "n3", "--image", "bb", "--memory", "256", "--vcpus", "1")
	if n3 := showVM(t, d, "n3"); n3.GuestIP != first {
		t.Errorf("new vm got %s, want the first address %s again", n3.GuestIP, first)
	}
	d.must(t, "vm", "delete", "--force", "n3")

	// After cleanup, the host is as before: only other daemons' changes
	// (tests may run in parallel) may differ.
	cleanupNet(d)
	out.close()
	mine := func(s string) bool {
		return s == d.bridge || s == out.hostIf || s == table || s == "inet "+table ||
			strings.Contains(s, n1.ID[:12]) || strings.Contains(s, n2.ID[:12])
	}
	linksAfter := linkNames(t)
	for _, l := range linksAfter {
		if !slices.Contains(linksBefore, l) {
			if mine(l) {
				t.Errorf("link %s left after cleanup", l)
			} else {
				t.Logf("link %s appeared (another test's?)", l)
			}
		}
	}
	rulesAfter := nftRuleset(t)
	for _, tbl := range nftTables(rulesAfter) {
		if !slices.Contains(nftTables(rulesBefore), tbl) {
			if mine(tbl) {
				t.Errorf("nftables table %s left after cleanup", tbl)
			} else {
				t.Logf("nftables table %s appeared (another test's?)", tbl)
			}
		}
	}
	for _, s := range []string{d.bridge, gw, n1.GuestIP, n2.GuestIP} {
		if strings.Contains(rulesAfter, `"`+s+`"`) || strings.Contains(rulesAfter, " "+s+" ") {
			t.Errorf("nftables ruleset still mentions %s after cleanup:\n%s", s, rulesAfter)
		}
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// checkDNS resolves each name against banger's DNS on gw; an unknown
// name under the domain gets NXDOMAIN.
func checkDNS(t *testing.T, gw string, want map[string]string) {
	t.Helper()
	for name, ip := range want {
		if got, rcode := lookupA(t, gw, name); len(got) != 1 || got[0] != ip {
			t.Errorf("%s @%s = %v (rcode %s), want %s", name, gw, got, dns.RcodeToString[rcode], ip)
		}
	}
	if got, rcode := lookupA(t, gw, "nosuchvm.vm"); len(got) != 0 || rcode != dns.RcodeNameError {
		t.Errorf("nosuchvm.vm = %v, rcode %s, want NXDOMAIN", got, dns.RcodeToString[rcode])
	}
}

// checkNamesInCLI: vm ports and vm ssh-config speak of n1.vm, and the
// ssh-config block works with plain OpenSSH.
func checkNamesInCLI(t *testing.T, d *daemon) {
	t.Helper()
	var ports struct {
		DNSName string `json:"dns_name"`
		Ports   []struct {
			Port     int    `json:"port"`
			Endpoint string `json:"endpoint"`
		} `json:"ports"`
	}
	d.mustJSON(t, &ports, "vm", "ports", "n1")
	if ports.DNSName != "n1.vm" {
		t.Errorf("vm ports dns_name %q, want n1.vm", ports.DNSName)
	}
	reachable := 0
	for _, p := range ports.Ports {
		if strings.HasPrefix(p.Endpoint, "(") {
			continue
		}
		reachable++
		if !strings.HasPrefix(p.Endpoint, "n1.vm:") {
			t.Errorf("port %d endpoint %q, want n1.vm:PORT", p.Port, p.Endpoint)
		}
	}
	if reachable == 0 {
		t.Errorf("vm ports n1 lists no reachable port: %+v", ports.Ports)
	}

	cfg := d.must(t, "vm", "ssh-config", "n1")
	if !strings.Contains(cfg, "Host n1.vm n1\n") || !strings.Contains(cfg, "HostKeyAlias n1.vm\n") {
		t.Errorf("ssh-config does not use n1.vm:\n%s", cfg)
	}
	path := filepath.Join(d.dir, "ssh_config")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := exec.Command("ssh", "-F", path, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "n1.vm", "hostname").CombinedOutput()
	if err != nil || strings.TrimSpace(string(o)) != "n1" {
		t.Errorf("ssh -F ssh-config n1.vm hostname: %v %q", err, o)
	}
}
