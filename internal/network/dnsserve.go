package network

import (
	"context"
	"fmt"
	"net/netip"

	"banger/internal/network/dns"
)

// resolvedConf is where systemd-resolved lists the real upstream servers.
const resolvedConf = "/run/systemd/resolve/resolv.conf"

// ServeDNS answers DNS on the bridge address, port 53 (UDP and TCP) and
// nowhere else, for clients on the bridge subnet only: NAME.DOMAIN gets the
// address lookup returns; other names go to the host's resolvers for VMs
// with NAT and are refused (nothing forwarded) for every other client, as
// a VM without NAT must not reach beyond the host, not even through DNS.
// The client is known by its source address, which the tap guards bind to
// the VM. It blocks until ctx is done; Setup must have run.
func (m *Manager) ServeDNS(ctx context.Context, lookup func(name string) (netip.Addr, bool)) error {
	subnet := m.Subnet()
	if !subnet.IsValid() {
		_, err := m.ready()
		return fmt.Errorf("serve dns: %w", err)
	}
	srv, err := dns.Listen(dns.Config{
		Addr:      gatewayOf(subnet),
		Allowed:   subnet,
		Domain:    m.cfg.Domain,
		Lookup:    lookup,
		Upstreams: dns.HostUpstreams(m.cfg.ResolvConf, resolvedConf),
		Forward:   m.hasNAT,
		Egress:    dnsGate{m: m, subnet: subnet},
		Log:       m.log,
	})
	if err != nil {
		return fmt.Errorf("serve dns: %w", err)
	}
	m.log.Info("dns listening", "addr", srv.Addr(), "domain", m.cfg.Domain)
	return srv.Serve(ctx)
}
