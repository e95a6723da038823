package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"banger/internal/api"
)

// ourBridge returns banger's bridge, nil when there is none, or an error
// when the name is taken by something that is not banger's bridge.
func (m *Manager) ourBridge() (netlink.Link, error) {
	name := m.cfg.Bridge
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	if l.Type() != "bridge" {
		return nil, api.Errorf(api.ErrConflict, "interface %s exists and is a %s, not a bridge; choose another bridge name", name, l.Type())
	}
	if l.Attrs().Alias != aliasOwner {
		return nil, api.Errorf(api.ErrConflict, "bridge %s exists but was not created by banger (its alias is %q, not %q); delete it or choose another bridge name", name, l.Attrs().Alias, aliasOwner)
	}
	return l, nil
}

// ensureBridge makes banger's bridge exist, up, with the gateway address of
// a subnet that clashes with no host route. created tells whether this call
// made the bridge.
func (m *Manager) ensureBridge() (subnet netip.Prefix, created bool, err error) {
	br, err := m.ourBridge()
	if err != nil {
		return netip.Prefix{}, false, err
	}
	var current []netip.Prefix
	brIndex := 0
	if br != nil {
		brIndex = br.Attrs().Index
		if current, err = bridgePrefixes(br); err != nil {
			return netip.Prefix{}, false, err
		}
	}
	subnet, err = m.chooseSubnet(current, brIndex)
	if err != nil {
		return netip.Prefix{}, false, err
	}
	if br == nil {
		if br, err = m.createBridge(); err != nil {
			return netip.Prefix{}, false, err
		}
		created = true
	}
	defer func() {
		if err != nil && created {
			m.deleteBridge()
		}
	}()
	if err = m.setBridgeAddress(br, current, subnet); err != nil {
		return netip.Prefix{}, created, err
	}
	// The tap guards only let unicast frames to this MAC through; a bridge
	// made by an older banger may carry another one.
	if want := bridgeMAC(m.cfg.Bridge); br.Attrs().HardwareAddr.String() != want.String() {
		if err = netlink.LinkSetHardwareAddr(br, want); err != nil {
			return netip.Prefix{}, created, fmt.Errorf("set MAC of bridge %s: %w", m.cfg.Bridge, err)
		}
	}
	if err = netlink.LinkSetUp(br); err != nil {
		return netip.Prefix{}, created, fmt.Errorf("bring up bridge %s: %w", m.cfg.Bridge, err)
	}
	return subnet, created, nil
}

func (m *Manager) createBridge() (netlink.Link, error) {
	name := m.cfg.Bridge
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	// A fixed MAC: otherwise the bridge takes its lowest port's MAC, which
	// changes as taps come and go and leaves stale ARP entries in guests.
	attrs.HardwareAddr = bridgeMAC(name)
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		return nil, fmt.Errorf("create bridge %s: %w", name, err)
	}
	br, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetAlias(br, aliasOwner)
	}
	if err != nil {
		m.deleteBridge()
		return nil, fmt.Errorf("create bridge %s: %w", name, err)
	}
	m.log.Info("created bridge", "bridge", name)
	return br, nil
}

// deleteBridge removes banger's bridge, best effort (used on failure paths).
func (m *Manager) deleteBridge() {
	if l, err := netlink.LinkByName(m.cfg.Bridge); err == nil && l.Type() == "bridge" {
		if err := netlink.LinkDel(l); err != nil {
			m.log.Warn("delete bridge", "bridge", m.cfg.Bridge, "err", err)
		}
	}
}

// bridgePrefixes lists the bridge's IPv4 addresses as address/bits.
func bridgePrefixes(br netlink.Link) ([]netip.Prefix, error) {
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", br.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := ipNetPrefix(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// setBridgeAddress gives the bridge exactly the gateway address of subnet.
// Another address is only replaced while no VM is attached.
func (m *Manager) setBridgeAddress(br netlink.Link, current []netip.Prefix, subnet netip.Prefix) error {
	want := netip.PrefixFrom(gatewayOf(subnet), subnet.Bits())
	have := false
	var stale []netip.Prefix
	for _, p := range current {
		if p == want {
			have = true
		} else {
			stale = append(stale, p)
		}
	}
	if len(stale) > 0 {
		ports, err := m.ownedPorts(br, nil)
		if err != nil {
			return err
		}
		if len(ports) > 0 {
			return api.Errorf(api.ErrConflict, "bridge %s has address %s but the configured subnet is %s; stop the VMs attached to it (%d) first", m.cfg.Bridge, stale[0], subnet, len(ports))
		}
	}
	for _, p := range stale {
		if err := netlink.AddrDel(br, &netlink.Addr{IPNet: prefixIPNet(p)}); err != nil {
			return fmt.Errorf("remove address %s from %s: %w", p, m.cfg.Bridge, err)
		}
	}
	if !have {
		if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: prefixIPNet(want)}); err != nil {
			return fmt.Errorf("add address %s to %s: %w", want, m.cfg.Bridge, err)
		}
	}
	return nil
}

// chooseSubnet returns the configured subnet when no host route clashes
// with it. With AutoSubnet it keeps the bridge's current subnet or else
// picks the first free /24 of 172.16.0.0/12.
func (m *Manager) chooseSubnet(current []netip.Prefix, brIndex int) (netip.Prefix, error) {
	routes, err := listRoutes()
	if err != nil {
		return netip.Prefix{}, err
	}
	clash := m.clashFinder(routes, brIndex)
	want := m.cfg.Subnet
	if !m.cfg.AutoSubnet {
		if c := clash(want); c != "" {
			return netip.Prefix{}, api.Errorf(api.ErrConflict, "bridge subnet %s clashes with host route %s; configure another subnet or \"auto\"", want, c)
		}
		return want, nil
	}
	var candidates []netip.Prefix
	for _, p := range current {
		candidates = append(candidates, p.Masked())
	}
	candidates = append(candidates, want)
	for p := netip.PrefixFrom(privateRange.Addr(), 24); privateRange.Contains(p.Addr()); p = nextPrefix(p) {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if checkSubnet(p) == nil && clash(p) == "" {
			if p != want {
				m.log.Info("configured bridge subnet clashes with a host route; using another", "configured", want, "using", p)
			}
			return p, nil
		}
	}
	return netip.Prefix{}, api.Errorf(api.ErrConflict, "no free /24 in %s for bridge %s: every one clashes with a host route", privateRange, m.cfg.Bridge)
}

func nextPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr().As4()
	n := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) + 1<<(32-p.Bits())
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), p.Bits())
}

// listRoutes dumps IPv4 routes of every table.
func listRoutes() ([]netlink.Route, error) {
	var err error
	for range 3 {
		var routes []netlink.Route
		routes, err = netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err == nil {
			return routes, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("list host routes: %w", err)
}

// clashFinder returns a function describing the first host route that
// overlaps a subnet ("" when none). Default routes and routes through
// banger's own bridge do not count.
func (m *Manager) clashFinder(routes []netlink.Route, brIndex int) func(netip.Prefix) string {
	return func(subnet netip.Prefix) string {
		var found []string
		for _, r := range routes {
			if r.Dst == nil || (brIndex != 0 && r.LinkIndex == brIndex) {
				continue
			}
			dst, ok := ipNetPrefix(r.Dst)
			if !ok || dst.Bits() == 0 || !dst.Masked().Overlaps(subnet) {
				continue
			}
			found = append(found, describeRoute(r, dst.Masked()))
		}
		return strings.Join(found, ", ")
	}
}

func describeRoute(r netlink.Route, dst netip.Prefix) string {
	s := dst.String()
	if r.LinkIndex != 0 {
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
			s += " dev " + l.Attrs().Name
		}
	}
	switch r.Table {
	case unix.RT_TABLE_MAIN:
	case unix.RT_TABLE_LOCAL:
		s += " table local"
	default:
		s += fmt.Sprintf(" table %d", r.Table)
	}
	return s
}

func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func prefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
