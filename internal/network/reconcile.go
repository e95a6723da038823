package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Reconcile makes the host match the VMs that are running (vm id -> NAT
// on): it deletes banger's taps that belong to no such VM, puts the taps
// of running VMs back on the bridge, makes the NAT set hold exactly the
// running NAT VMs, guards exactly the taps of running VMs, releases the
// addresses of every other VM and sets IP forwarding accordingly. Run it after Setup when the daemon starts.
func (m *Manager) Reconcile(ctx context.Context, live map[string]bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	subnet, err := m.ready()
	if err != nil {
		return fmt.Errorf("network reconcile: %w", err)
	}
	var errs []error
	br, err := m.ourBridge()
	if err != nil {
		return fmt.Errorf("network reconcile: %w", err)
	}
	known, err := m.knownTaps(ctx, live)
	if err != nil {
		errs = append(errs, err)
	}
	ports, err := m.ownedPorts(br, known)
	if err != nil {
		errs = append(errs, err)
	}
	liveTaps := make(map[string]string, len(live))
	for id := range live {
		liveTaps[TapName(id)] = id
	}
	for _, p := range ports {
		name := p.link.Attrs().Name
		id := p.vmID
		if id == "" {
			id = liveTaps[name]
		}
		if _, ok := live[id]; ok && name == TapName(id) {
			if br != nil && p.link.Attrs().MasterIndex != br.Attrs().Index {
				if err := m.plugPort(p.link, br, id); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		if err := netlink.LinkDel(p.link); err != nil {
			errs = append(errs, fmt.Errorf("delete stale %s: %w", name, err))
			continue
		}
		m.log.Info("deleted stale tap", "tap", name, "vm", p.vmID)
	}

	all, err := m.ips.ListIPs(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("list addresses: %w", err))
		return fmt.Errorf("network reconcile: %w", errors.Join(errs...))
	}
	var nat []netip.Addr
	for id, ip := range all {
		on, ok := live[id]
		if !ok {
			if err := m.ips.ReleaseIP(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("release %s of vm %s: %w", ip, id, err))
			}
			continue
		}
		if on && subnet.Contains(ip) {
			nat = append(nat, ip)
		}
	}
	if err := m.replaceState(ctx, subnet, nat); err != nil {
		errs = append(errs, err)
	}
	if err := m.setForwarding(len(nat) > 0); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network reconcile: %w", err)
	}
	return nil
}
