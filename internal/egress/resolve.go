package egress

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	mdns "github.com/miekg/dns"
)

// resolveTimeout bounds one query to one upstream.
const resolveTimeout = 3 * time.Second

// Resolver asks the host's resolvers for a name's IPv4 addresses: the
// guest's idea of the name (its /etc/hosts, its own DNS) plays no part.
type Resolver struct {
	// Upstreams lists the resolvers, "host:port" (the host's resolv.conf).
	Upstreams func() []string
}

// LookupA returns name's IPv4 addresses and the shortest TTL of the answer.
func (r Resolver) LookupA(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	q.RecursionDesired = true
	c := &mdns.Client{Net: "udp", Timeout: resolveTimeout}
	var errs []error
	for _, up := range r.Upstreams() {
		resp, _, err := c.ExchangeContext(ctx, q, up)
		if err == nil && resp.Truncated {
			tc := &mdns.Client{Net: "tcp", Timeout: resolveTimeout}
			resp, _, err = tc.ExchangeContext(ctx, q, up)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if resp.Rcode != mdns.RcodeSuccess {
			return nil, 0, fmt.Errorf("resolve %s: %s", name, mdns.RcodeToString[resp.Rcode])
		}
		addrs, ttl := AnswerAddrs(resp)
		if len(addrs) == 0 {
			return nil, 0, fmt.Errorf("resolve %s: no IPv4 address", name)
		}
		return addrs, ttl, nil
	}
	if len(errs) == 0 {
		return nil, 0, fmt.Errorf("resolve %s: no resolver configured on the host", name)
	}
	return nil, 0, fmt.Errorf("resolve %s: %w", name, errors.Join(errs...))
}

// AnswerAddrs lists the A records of an answer (its CNAME chain followed
// by the resolver) and their shortest TTL.
func AnswerAddrs(m *mdns.Msg) ([]netip.Addr, time.Duration) {
	var out []netip.Addr
	ttl := uint32(0)
	for _, rr := range m.Answer {
		a, ok := rr.(*mdns.A)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.A)
		if !ok {
			continue
		}
		out = append(out, ip.Unmap())
		if ttl == 0 || a.Hdr.Ttl < ttl {
			ttl = a.Hdr.Ttl
		}
	}
	return out, time.Duration(ttl) * time.Second
}
