package dns

import (
	"context"
	"net/netip"

	mdns "github.com/miekg/dns"
)

// Egress governs the clients under an allowlist: they get answers for the
// names their policy allows (forwarded upstream) and REFUSED, with nothing
// sent upstream, for every other name outside Domain (DNS is no tunnel).
type Egress interface {
	// Governs reports whether client is under an allowlist.
	Governs(client netip.Addr) bool
	// AllowsName reports whether client may resolve name.
	AllowsName(client netip.Addr, name string) bool
	// Answered sees every successful upstream answer to a governed client,
	// before the client does (to open the addresses it names).
	Answered(client netip.Addr, name string, answer *mdns.Msg)
	// Refused sees every name refused to a governed client.
	Refused(client netip.Addr, name string)
}

// answerGoverned answers a client under an allowlist.
func (s *Server) answerGoverned(ctx context.Context, network string, r *mdns.Msg, client netip.Addr, name string) *mdns.Msg {
	if !s.cfg.Egress.AllowsName(client, name) {
		s.cfg.Egress.Refused(client, name)
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeRefused)
		return m
	}
	resp := s.forward(ctx, network, r)
	if resp.Rcode == mdns.RcodeSuccess {
		s.cfg.Egress.Answered(client, name, resp)
	}
	return resp
}
