package network

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"

	"banger/internal/api"
)

// natMembers lists the addresses in the NAT set of table t.
func natMembers(conn *nftables.Conn, t *nftables.Table) ([]netip.Addr, error) {
	elems, err := conn.GetSetElements(natSet(t))
	if err != nil {
		return nil, fmt.Errorf("list nftables set %s: %w", natSetName, err)
	}
	var out []netip.Addr
	for _, e := range elems {
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// setNATView records which addresses have NAT, for the DNS server.
func (m *Manager) setNATView(addrs []netip.Addr) {
	view := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		view[a] = true
	}
	m.natMu.Lock()
	m.natView = view
	m.natMu.Unlock()
}

// hasNAT reports whether a is the address of a VM with NAT (as last
// written to nftables by this Manager).
func (m *Manager) hasNAT(a netip.Addr) bool {
	m.natMu.RLock()
	defer m.natMu.RUnlock()
	return m.natView[a.Unmap()]
}

// setNATMember puts vmID (address ip) in or out of NAT: the NAT set and
// the guard of its tap (when the tap exists) change in one batch. It
// returns how many members the set has afterwards.
func (m *Manager) setNATMember(vmID string, ip netip.Addr, on bool) (int, error) {
	conn, err := nftables.New()
	if err != nil {
		return 0, fmt.Errorf("nftables: %w", err)
	}
	t := m.nftTable()
	exists, err := tableExists(conn, t)
	if err != nil {
		return 0, err
	}
	if !exists {
		if on {
			return 0, api.Errorf(api.ErrUnavailable, "nftables table inet %s is missing; restart the daemon to recreate it", t.Name)
		}
		return 0, nil
	}
	members, err := natMembers(conn, t)
	if err != nil {
		return 0, err
	}
	in := slices.Contains(members, ip)
	set := natSet(t)
	switch {
	case on && !in:
		err = conn.SetAddElements(set, setElements([]netip.Addr{ip}))
		members = append(members, ip)
	case !on && in:
		err = conn.SetDeleteElements(set, setElements([]netip.Addr{ip}))
		members = slices.DeleteFunc(members, func(a netip.Addr) bool { return a == ip })
	}
	if err != nil {
		return 0, fmt.Errorf("update nftables set %s with %s: %w", natSetName, ip, err)
	}
	link, err := findPort(vmID)
	if err != nil {
		return 0, err
	}
	if link != nil && m.subnet.IsValid() {
		gt := m.guardTable()
		conn.AddTable(gt)
		queueGuard(conn, gt, m.guardOf(link, vmID, ip, on), m.guardNet(m.subnet))
	}
	if err := conn.Flush(); err != nil {
		return 0, fmt.Errorf("update nftables set %s with %s: %w", natSetName, ip, err)
	}
	m.setNATView(members)
	return len(members), nil
}

// replaceState makes the NAT set hold exactly nat and the netdev table
// guard exactly the taps of this bridge that exist, in one batch.
func (m *Manager) replaceState(ctx context.Context, subnet netip.Prefix, nat []netip.Addr) error {
	guards, err := m.portGuards(ctx, subnet, nat)
	if err != nil {
		return err
	}
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	set := natSet(m.nftTable())
	conn.FlushSet(set)
	if len(nat) > 0 {
		if err := conn.SetAddElements(set, setElements(nat)); err != nil {
			return fmt.Errorf("update nftables set %s: %w", natSetName, err)
		}
	}
	queueGuardTable(conn, m.guardTable(), guards, m.guardNet(subnet))
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("update nftables set %s and tap guards: %w", natSetName, err)
	}
	m.setNATView(nat)
	return nil
}

// portGuards builds a guard for every tap of this bridge that exists: the
// binding of the VM that owns it (its address from the store, NAT when
// that address is in nat), or a guard that drops everything for a tap
// whose VM has no address.
func (m *Manager) portGuards(ctx context.Context, subnet netip.Prefix, nat []netip.Addr) ([]guard, error) {
	br, err := m.ourBridge()
	if err != nil {
		return nil, err
	}
	all, err := m.ips.ListIPs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	byTap := make(map[string]string, len(all))
	known := make(map[string]bool, len(all))
	for id := range all {
		byTap[TapName(id)] = id
		known[TapName(id)] = true
	}
	ports, err := m.ownedPorts(br, known)
	if err != nil {
		return nil, err
	}
	var out []guard
	for _, p := range ports {
		name := p.link.Attrs().Name
		id := p.vmID
		if id == "" {
			id = byTap[name]
		}
		ip, ok := all[id]
		if id == "" || !ok || TapName(id) != name || !subnet.Contains(ip) {
			out = append(out, guard{tap: name, tapMAC: p.link.Attrs().HardwareAddr})
			continue
		}
		out = append(out, m.guardOf(p.link, id, ip, slices.Contains(nat, ip)))
	}
	return out, nil
}

// otherNATTables names the tables of other banger daemons (other bridges)
// whose NAT set has members: they need IP forwarding too. It only reads.
func (m *Manager) otherNATTables() ([]string, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list nftables tables: %w", err)
	}
	var out []string
	for _, t := range tables {
		if t.Name == m.table || (t.Name != TableName("") && !strings.HasPrefix(t.Name, "banger-")) {
			continue
		}
		members, err := natMembers(conn, t)
		if err != nil {
			continue // not one of ours after all (no NAT set)
		}
		if len(members) > 0 {
			out = append(out, t.Name)
		}
	}
	return out, nil
}
