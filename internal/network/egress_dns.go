package network

import (
	"net/netip"

	mdns "github.com/miekg/dns"

	"banger/internal/egress"
	"banger/internal/model"
)

// dnsGate lets banger's DNS server follow the egress policies: a VM under
// an allowlist resolves only allowed names, and their answers open the
// addresses for the ports the policy allows them on.
// It never waits on the Manager's lock.
type dnsGate struct {
	m      *Manager
	subnet netip.Prefix
}

func (g dnsGate) Governs(client netip.Addr) bool {
	_, pol, ok := g.m.egress.Lookup(client)
	return ok && pol.Mode == model.EgressAllow
}

func (g dnsGate) AllowsName(client netip.Addr, name string) bool {
	_, pol, ok := g.m.egress.Lookup(client)
	return ok && pol.AllowsName(name)
}

func (g dnsGate) Answered(client netip.Addr, name string, answer *mdns.Msg) {
	addrs, ttl := egress.AnswerAddrs(answer)
	if len(addrs) > 0 {
		g.m.learn(client, g.subnet, name, addrs, ttl)
	}
}

func (g dnsGate) Refused(client netip.Addr, name string) {
	n, _ := egress.NormalName(name)
	if len(n) > 253 {
		n = n[:253]
	}
	g.m.egress.Deny(client, egress.Denial{Via: "dns", Name: n, Reason: "name not allowed"})
}
