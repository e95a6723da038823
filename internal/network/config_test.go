package network

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/api"
)

func TestParseSubnet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		auto bool
		err  string
	}{
		{in: "", want: "172.30.0.0/24"},
		{in: "auto", want: "172.30.0.0/24", auto: true},
		{in: "10.20.0.0/16", want: "10.20.0.0/16"},
		{in: "10.20.0.5/24", err: "did you mean 10.20.0.0/24"},
		{in: "10.0.0.0/8", err: "between /16 and /30"},
		{in: "10.0.0.0/31", err: "between /16 and /30"},
		{in: "fd00::/64", err: "only IPv4"},
		{in: "banana", err: "want a CIDR"},
	} {
		p, auto, err := ParseSubnet(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, api.ErrInvalid) {
				t.Errorf("ParseSubnet(%q) err = %v, want invalid %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || p.String() != tc.want || auto != tc.auto {
			t.Errorf("ParseSubnet(%q) = %v %v %v, want %s %v", tc.in, p, auto, err, tc.want, tc.auto)
		}
	}
}

func TestPool(t *testing.T) {
	p := netip.MustParsePrefix("172.30.0.0/24")
	if gw := gatewayOf(p); gw.String() != "172.30.0.1" {
		t.Errorf("gateway %s", gw)
	}
	pool := poolOf(p)
	if len(pool) != 253 || pool[0].String() != "172.30.0.2" || pool[len(pool)-1].String() != "172.30.0.254" {
		t.Errorf("pool of /24: %d addresses %v..%v", len(pool), pool[0], pool[len(pool)-1])
	}
	if pool := poolOf(netip.MustParsePrefix("10.0.0.0/30")); len(pool) != 1 || pool[0].String() != "10.0.0.2" {
		t.Errorf("pool of /30: %v", pool)
	}
}

func TestTapNameAndMAC(t *testing.T) {
	id := "0123456789abcdef0123"
	if got := TapName(id); got != "bt0123456789ab" || len(got) > 15 {
		t.Errorf("TapName = %q", got)
	}
	if got := TapName("short"); got != "btshort" {
		t.Errorf("TapName(short) = %q", got)
	}
	a, b := MACFor(id), MACFor(id)
	if a.String() != b.String() {
		t.Errorf("MAC not stable: %s %s", a, b)
	}
	if a[0] != 0x02 {
		t.Errorf("MAC %s: first octet must be 02 (local, unicast)", a)
	}
	if MACFor(id+"x").String() == a.String() {
		t.Errorf("different ids gave the same MAC %s", a)
	}
}

func TestCheckVMID(t *testing.T) {
	for _, ok := range []string{"abc", "A-b_9"} {
		if err := checkVMID(ok); err != nil {
			t.Errorf("checkVMID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a b", "a:b", "é"} {
		if err := checkVMID(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("checkVMID(%q) = %v, want invalid", bad, err)
		}
	}
}

func TestNewValidates(t *testing.T) {
	ips := newMemIPs()
	for _, tc := range []struct {
		cfg Config
		err string
	}{
		{Config{}, "state directory"},
		{Config{StateDir: "/x", Bridge: "much-too-long-bridge"}, "1 to 15"},
		{Config{StateDir: "/x", Bridge: "br/0"}, "invalid character"},
		{Config{StateDir: "/x", Subnet: netip.MustParsePrefix("172.30.0.9/24")}, "not a network address"},
	} {
		if _, err := New(tc.cfg, ips, nil); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.err)
		}
	}
	if _, err := New(Config{StateDir: "/x"}, nil, nil); err == nil {
		t.Error("New without a store succeeded")
	}
}

func TestHasNetAdmin(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		status string
		want   bool
		err    bool
	}{
		{"Name:\tx\nCapEff:\t000001ffffffffff\n", true, false},
		{"Name:\tx\nCapEff:\t0000000000000000\n", false, false},
		{"Name:\tx\nCapEff:\t0000000000001000\n", true, false},
		{"Name:\tx\n", false, true},
	} {
		path := filepath.Join(dir, "status")
		if err := os.WriteFile(path, []byte(tc.status), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := hasNetAdmin(path)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("hasNetAdmin(%q) = %v, %v", tc.status, got, err)
		}
	}
}

func TestBootNetwork(t *testing.T) {
	a := Attachment{
		MAC:     "02:00:00:00:00:01",
		Address: netip.MustParsePrefix("172.30.0.2/24"),
		Gateway: netip.MustParseAddr("172.30.0.1"),
		DNS:     []netip.Addr{netip.MustParseAddr("172.30.0.1")},
		Domain:  "vm",
	}
	n := a.BootNetwork()
	if n.Address != "172.30.0.2/24" || n.Gateway != "172.30.0.1" || n.MAC != a.MAC ||
		len(n.DNS) != 1 || n.DNS[0] != "172.30.0.1" || len(n.DNSSearch) != 1 || n.DNSSearch[0] != "vm" {
		t.Errorf("BootNetwork = %+v", n)
	}
}
