package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"banger/internal/api"
	"banger/internal/bootcfg"
)

// Network modes, as VM records show them.
const (
	ModeBridge = "bridge"
	ModeUser   = "user"
)

// Attachment is what a VM needs to use its link to the host.
type Attachment struct {
	// Mode is ModeBridge or ModeUser.
	Mode string
	// Tap is the host tap device the VMM opens (bridge mode; empty in
	// user mode).
	Tap string
	// MAC is the guest's MAC address.
	MAC string
	// Address is the guest's address with the subnet length.
	Address netip.Prefix
	Gateway netip.Addr
	// DNS is banger's resolver (the gateway); Domain its search domain.
	DNS    []netip.Addr
	Domain string
	// SSHHostPort, in user mode, is the host loopback port the VMM
	// forwards to the guest's SSH (0 in bridge mode: SSH is at Address).
	SSHHostPort int
}

// BootNetwork renders a as the guest's boot configuration.
func (a Attachment) BootNetwork() *bootcfg.Network {
	n := &bootcfg.Network{MAC: a.MAC, Address: a.Address.String(), Gateway: a.Gateway.String()}
	for _, d := range a.DNS {
		n.DNS = append(n.DNS, d.String())
	}
	if a.Domain != "" {
		n.DNSSearch = []string{a.Domain}
	}
	return n
}

// Attach gives vmID an address and a tap on the bridge (isolated from
// other VMs unless allowed) and puts it in or out of NAT. Attaching an
// attached VM returns the same attachment. On failure nothing is left.
func (m *Manager) Attach(ctx context.Context, vmID string, nat bool) (att Attachment, err error) {
	if err := checkVMID(vmID); err != nil {
		return Attachment{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("attach vm %s: %w", vmID, err)
		}
	}()
	subnet, err := m.ready()
	if err != nil {
		return Attachment{}, err
	}
	br, err := m.ourBridge()
	if err != nil {
		return Attachment{}, err
	}
	if br == nil {
		return Attachment{}, api.Errorf(api.ErrUnavailable, "bridge %s is gone; restart the daemon to recreate it", m.cfg.Bridge)
	}
	ip, fresh, err := m.allocate(ctx, vmID, subnet)
	if err != nil {
		return Attachment{}, err
	}
	defer func() {
		if err != nil && fresh {
			if rerr := m.ips.ReleaseIP(context.WithoutCancel(ctx), vmID); rerr != nil {
				m.log.Warn("release address after failed attach", "vm", vmID, "err", rerr)
			}
		}
	}()
	link, err := findPort(vmID)
	if err != nil {
		return Attachment{}, err
	}
	created := false
	if link == nil {
		if link, err = m.newPort(TapName(vmID)); err != nil {
			return Attachment{}, err
		}
		created = true
	}
	defer func() {
		if err != nil && created {
			if derr := netlink.LinkDel(link); derr != nil {
				m.log.Warn("delete tap after failed attach", "tap", link.Attrs().Name, "err", derr)
			}
		}
	}()
	// The guard goes on before the tap joins the bridge: no frame of the
	// guest ever passes unchecked.
	if err = m.setGuard(m.guardOf(link, vmID, ip, nat), subnet); err != nil {
		return Attachment{}, err
	}
	defer func() {
		if err != nil && created {
			if gerr := m.removeGuard(link.Attrs().Name); gerr != nil {
				m.log.Warn("remove guard after failed attach", "tap", link.Attrs().Name, "err", gerr)
			}
		}
	}()
	if err = m.plugPort(link, br, vmID); err != nil {
		return Attachment{}, err
	}
	if err = m.applyNAT(vmID, ip, nat); err != nil {
		if nat {
			if _, rerr := m.setNATMember(vmID, ip, false); rerr != nil {
				m.log.Warn("undo NAT after failed attach", "vm", vmID, "err", rerr)
			}
		}
		return Attachment{}, err
	}
	gw := gatewayOf(subnet)
	return Attachment{
		Mode:    ModeBridge,
		Tap:     link.Attrs().Name,
		MAC:     MACFor(vmID).String(),
		Address: netip.PrefixFrom(ip, subnet.Bits()),
		Gateway: gw,
		DNS:     []netip.Addr{gw},
		Domain:  m.cfg.Domain,
	}, nil
}

// allocate returns vmID's address in subnet; fresh is true when this call
// allocated it.
func (m *Manager) allocate(ctx context.Context, vmID string, subnet netip.Prefix) (ip netip.Addr, fresh bool, err error) {
	all, err := m.ips.ListIPs(ctx)
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("list addresses: %w", err)
	}
	pool := poolOf(subnet)
	if a, ok := all[vmID]; ok {
		if subnet.Contains(a) && a != gatewayOf(subnet) {
			return a, false, nil
		}
		// Left from another subnet: replace it.
		if err := m.ips.ReleaseIP(ctx, vmID); err != nil {
			return netip.Addr{}, false, fmt.Errorf("release old address %s: %w", a, err)
		}
		delete(all, vmID)
	}
	a, err := m.ips.AllocateIP(ctx, vmID, pool)
	if err != nil {
		used := 0
		for _, b := range all {
			if subnet.Contains(b) {
				used++
			}
		}
		if used >= len(pool) {
			return netip.Addr{}, false, api.Errorf(api.ErrUnavailable, "no free address in %s: all %d are in use; stop a VM or configure a larger subnet", subnet, len(pool))
		}
		return netip.Addr{}, false, fmt.Errorf("allocate address in %s: %w", subnet, err)
	}
	for id, b := range all {
		if b == a && id != vmID {
			_ = m.ips.ReleaseIP(ctx, vmID)
			return netip.Addr{}, false, fmt.Errorf("address store gave %s, which vm %s holds", a, id)
		}
	}
	if !subnet.Contains(a) || a == gatewayOf(subnet) {
		_ = m.ips.ReleaseIP(ctx, vmID)
		return netip.Addr{}, false, fmt.Errorf("address store gave %s, outside the pool of %s", a, subnet)
	}
	return a, true, nil
}

// applyNAT puts vmID (address ip) in or out of NAT and adjusts IP
// forwarding.
func (m *Manager) applyNAT(vmID string, ip netip.Addr, on bool) error {
	n, err := m.setNATMember(vmID, ip, on)
	if err != nil {
		return err
	}
	return m.setForwarding(n > 0 || m.egress.CountAllow() > 0)
}

// Detach deletes vmID's tap, takes it out of NAT and releases its address.
// Detaching a VM that is not attached does nothing.
func (m *Manager) Detach(ctx context.Context, vmID string) error {
	if err := checkVMID(vmID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	link, err := findPort(vmID)
	tapGone := err == nil
	if err != nil {
		errs = append(errs, err)
	} else if link != nil {
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", link.Attrs().Name, err))
			tapGone = false
		}
	}
	if tapGone { // a tap that is still there keeps its guard
		if err := m.removeGuard(TapName(vmID)); err != nil {
			errs = append(errs, err)
		}
	}
	all, err := m.ips.ListIPs(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("list addresses: %w", err))
	} else if ip, ok := all[vmID]; ok {
		if err := m.detachEgress(vmID, ip); err != nil {
			errs = append(errs, err)
		}
		if err := m.applyNAT(vmID, ip, false); err != nil {
			errs = append(errs, err)
		}
		if err := m.ips.ReleaseIP(ctx, vmID); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", ip, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach vm %s: %w", vmID, err)
	}
	return nil
}

// SetNAT turns NAT on or off for an attached VM. It applies at once: on,
// to new connections; off, to every packet (the tap's guard drops what the
// VM sends beyond the subnet, established connections included).
func (m *Manager) SetNAT(ctx context.Context, vmID string, on bool) error {
	if err := checkVMID(vmID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.ready(); err != nil {
		return err
	}
	ip, err := m.attachedIP(ctx, vmID, "set nat")
	if err != nil {
		return err
	}
	if err := m.applyNAT(vmID, ip, on); err != nil {
		return fmt.Errorf("set nat for vm %s: %w", vmID, err)
	}
	return nil
}

// attachedIP is the bridge address of an attached VM (m.mu held); what names
// the operation in errors.
func (m *Manager) attachedIP(ctx context.Context, vmID, what string) (netip.Addr, error) {
	all, err := m.ips.ListIPs(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s for vm %s: list addresses: %w", what, vmID, err)
	}
	ip, ok := all[vmID]
	if !ok {
		return netip.Addr{}, api.Errorf(api.ErrNotFound, "%s for vm %s: it has no bridge address (not attached)", what, vmID)
	}
	return ip, nil
}
