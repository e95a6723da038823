package egress

import (
	"net/netip"
	"testing"

	"banger/internal/model"
)

func TestCompileRefusesBadEntries(t *testing.T) {
	for _, p := range []model.EgressPolicy{
		{Mode: "everything"},
		{Mode: model.EgressOpen, Allow: []string{"github.com"}},
		{Mode: model.EgressAllow, Allow: []string{"github.com:0"}},
		{Mode: model.EgressAllow, Allow: []string{"github.com:70000"}},
		{Mode: model.EgressAllow, Allow: []string{"github.com:"}},
		{Mode: model.EgressAllow, Allow: []string{"localhost"}},
		{Mode: model.EgressAllow, Allow: []string{"*"}},
		{Mode: model.EgressAllow, Allow: []string{"**.example.com"}},
		{Mode: model.EgressAllow, Allow: []string{"exa mple.com"}},
		{Mode: model.EgressAllow, Allow: []string{"10.0.0.0/33"}},
		{Mode: model.EgressAllow, Allow: []string{"2001:db8::/32"}},
		{Mode: model.EgressAllow, Allow: []string{""}},
		{Mode: model.EgressAllow, Deny: []string{"github.com"}},
		{Mode: model.EgressAllow, Allow: make([]string, MaxRules+1)},
	} {
		if _, err := Compile(p); err == nil {
			t.Errorf("Compile(%+v) accepted", p)
		}
	}
}

func TestPolicyMatching(t *testing.T) {
	p, err := Compile(model.EgressPolicy{Mode: model.EgressAllow,
		Allow: []string{"GitHub.com", "*.npmjs.org", "git.example.com:22", "203.0.113.0/24", "198.51.100.7:5432"},
		Deny:  []string{"203.0.113.128/25"}})
	if err != nil {
		t.Fatal(err)
	}
	names := []struct {
		name string
		port uint16
		want bool
	}{
		{"github.com", 443, true}, {"GITHUB.COM.", 80, true}, {"github.com", 22, false},
		{"api.github.com", 443, false}, {"evilgithub.com", 443, false}, {"github.com.evil.net", 443, false},
		{"registry.npmjs.org", 443, true}, {"a.b.npmjs.org", 80, true}, {"npmjs.org", 443, false},
		{"xnpmjs.org", 443, false}, {"git.example.com", 22, true}, {"git.example.com", 443, false},
		{"", 443, false}, {"github.com\x00.evil", 443, false},
	}
	for _, c := range names {
		if got := p.AllowsNamePort(c.name, c.port); got != c.want {
			t.Errorf("AllowsNamePort(%q, %d) = %v, want %v", c.name, c.port, got, c.want)
		}
	}
	if !p.AllowsName("git.example.com") || p.AllowsName("example.com") {
		t.Error("AllowsName")
	}
	if got := p.NamePorts("git.example.com"); len(got) != 1 || got[0] != 22 {
		t.Errorf("NamePorts = %v", got)
	}
	addrs := []struct {
		addr string
		port uint16
		want bool
	}{
		{"203.0.113.5", 8080, true}, {"203.0.113.200", 443, false}, {"198.51.100.7", 5432, true},
		{"198.51.100.7", 5433, false}, {"198.51.100.8", 5432, false}, {"192.0.2.1", 443, false},
	}
	for _, c := range addrs {
		if got := p.AllowsAddr(netip.MustParseAddr(c.addr), c.port); got != c.want {
			t.Errorf("AllowsAddr(%s, %d) = %v, want %v", c.addr, c.port, got, c.want)
		}
	}
	open, _ := Compile(model.EgressPolicy{Mode: model.EgressOpen})
	if open.AllowsName("github.com") || open.AllowsAddr(netip.MustParseAddr("203.0.113.5"), 80) {
		t.Error("open mode has nothing to allow through the proxy")
	}
}

func TestRefusedAddresses(t *testing.T) {
	bridge := netip.MustParsePrefix("172.30.0.0/24")
	local := func(a netip.Addr) bool { return a == netip.MustParseAddr("198.51.100.1") }
	for _, a := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
		"100.64.0.1", "0.0.0.0", "0.1.2.3", "224.0.0.1", "255.255.255.255", "240.0.0.1", "172.30.0.1",
		"198.51.100.1", "::1", "2001:db8::1", "::ffff:127.0.0.1"} {
		if Refused(netip.MustParseAddr(a), bridge, local) == "" {
			t.Errorf("%s is not refused", a)
		}
	}
	for _, a := range []string{"140.82.112.3", "198.18.0.2", "203.0.113.9"} {
		if why := Refused(netip.MustParseAddr(a), bridge, local); why != "" {
			t.Errorf("%s refused: %s", a, why)
		}
	}
}
