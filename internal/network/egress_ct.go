package network

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"banger/internal/egress"
)

// vmTCPFlows matches the tracked TCP connections a VM opened directly
// (not through the egress proxy, whose 80/443 connections the proxy
// itself ends when a policy stops allowing them).
// Those a network rule of the policy still allows are kept.
type vmTCPFlows struct {
	ip  netip.Addr
	pol egress.Policy
}

func (f vmTCPFlows) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	src, ok := netip.AddrFromSlice(flow.Forward.SrcIP)
	if !ok || src.Unmap() != f.ip || flow.Forward.Protocol != unix.IPPROTO_TCP ||
		flow.Forward.DstPort == 80 || flow.Forward.DstPort == 443 {
		return false
	}
	dst, ok := netip.AddrFromSlice(flow.Forward.DstIP)
	return !ok || !f.pol.AllowsAddr(dst.Unmap(), flow.Forward.DstPort)
}

// forgetConnections deletes the conntrack entries of ip's direct TCP
// connections that pol does not allow by a network rule, so that a new allowlist applies to them at once: their next
// segment is new to conntrack and not a SYN, which the inet table drops.
func forgetConnections(ip netip.Addr, pol egress.Policy) error {
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, vmTCPFlows{ip, pol}); err != nil {
		return fmt.Errorf("forget tracked connections of %s: %w", ip, err)
	}
	return nil
}
