package network

import (
	"context"
	"errors"
	"fmt"
	"net"

	"banger/internal/egress"
	"banger/internal/network/dns"
)

// ServeEgress runs the egress proxy on the gateway address (ports
// EgressHTTPPort and EgressTLSPort, where the inet table redirects the TCP
// 80 and 443 of VMs under an allowlist) until ctx is done. Names are
// resolved with the host's resolvers (the resolv.conf the DNS server
// forwards to). hook, when not nil, may take over allowed connections.
func (m *Manager) ServeEgress(ctx context.Context, hook egress.Hook) error {
	subnet := m.Subnet()
	if !subnet.IsValid() {
		_, err := m.ready()
		return fmt.Errorf("serve egress proxy: %w", err)
	}
	gw := gatewayOf(subnet)
	p := &egress.Proxy{
		Registry: m.egress,
		Resolver: egress.Resolver{Upstreams: dns.HostUpstreams(m.cfg.ResolvConf, resolvedConf)},
		Bridge:   subnet,
		Hook:     hook,
		Log:      m.log,
	}
	var ls []net.Listener
	for _, port := range []uint16{EgressHTTPPort, EgressTLSPort} {
		l, err := net.Listen("tcp4", egress.ListenAddr(gw, port))
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return fmt.Errorf("serve egress proxy: %w", err)
		}
		ls = append(ls, l)
	}
	m.log.Info("egress proxy listening", "http", ls[0].Addr(), "tls", ls[1].Addr())
	errc := make(chan error, 2)
	go func() { errc <- p.Serve(ctx, ls[0], false) }()
	go func() { errc <- p.Serve(ctx, ls[1], true) }()
	return errors.Join(<-errc, <-errc)
}
