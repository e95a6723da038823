package network

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"

	"banger/internal/api"
)

// createTap makes a persistent tap like `ip tuntap add NAME mode tap`: no
// packet information header; QEMU opens it by name with script=no.
func createTap(name string) (netlink.Link, error) {
	tap := &netlink.Tuntap{
		LinkAttrs: netlink.LinkAttrs{Name: name},
		Mode:      netlink.TUNTAP_MODE_TAP,
		Flags:     netlink.TUNTAP_NO_PI | netlink.TUNTAP_TUN_EXCL,
	}
	if err := netlink.LinkAdd(tap); err != nil {
		return nil, fmt.Errorf("create tap %s: %w", name, err)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("create tap %s: %w", name, err)
	}
	return l, nil
}

// port is a VM link on the bridge that banger made.
type port struct {
	link netlink.Link
	vmID string // from the alias; "" when only the name says it is ours
}

// ownedPorts lists this Manager's VM links: those whose alias names a VM
// and this bridge (or, in the older alias form, that hang off this
// bridge), and unlabelled taps named bt* that hang off this bridge, or off
// no bridge when known holds their name (a tap of a VM this Manager has an
// address for, left by a crash before it was labelled). Ports of other
// banger bridges are never listed.
func (m *Manager) ownedPorts(br netlink.Link, known map[string]bool) ([]port, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	brIndex := -1
	if br != nil {
		brIndex = br.Attrs().Index
	}
	var out []port
	for _, l := range links {
		a := l.Attrs()
		if id, bridge, ok := portOwner(a.Alias); ok {
			if bridge == m.cfg.Bridge || (bridge == "" && a.MasterIndex == brIndex) {
				out = append(out, port{link: l, vmID: id})
			}
			continue
		}
		if strings.HasPrefix(a.Name, tapPrefix) && l.Type() == "tuntap" && ((a.MasterIndex == 0 && known[a.Name]) || a.MasterIndex == brIndex) {
			out = append(out, port{link: l})
		}
	}
	return out, nil
}

// knownTaps names the taps of every VM with an address in the store and of
// the VMs in live.
func (m *Manager) knownTaps(ctx context.Context, live map[string]bool) (map[string]bool, error) {
	all, err := m.ips.ListIPs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	known := make(map[string]bool, len(all)+len(live))
	for id := range all {
		known[TapName(id)] = true
	}
	for id := range live {
		known[TapName(id)] = true
	}
	return known, nil
}

// plugPort makes l a port of the bridge owned by vmID: alias, master,
// isolation (unless VM-to-VM traffic is allowed), up.
func (m *Manager) plugPort(l netlink.Link, br netlink.Link, vmID string) error {
	name := l.Attrs().Name
	if err := netlink.LinkSetAlias(l, portAlias(vmID, m.cfg.Bridge)); err != nil {
		return fmt.Errorf("label %s: %w", name, err)
	}
	if err := netlink.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", name, m.cfg.Bridge, err)
	}
	// Isolated ports cannot talk to each other, only to the bridge itself;
	// this blocks VM-to-VM traffic without depending on br_netfilter.
	if err := netlink.LinkSetIsolated(l, !m.cfg.AllowVMToVM); err != nil {
		return fmt.Errorf("set isolation on %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	return nil
}

// findPort returns vmID's link, nil when there is none, or a conflict when
// the tap name belongs to another VM (ids sharing their first 12 characters).
func findPort(vmID string) (netlink.Link, error) {
	name := TapName(vmID)
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	owner, _, ok := portOwner(l.Attrs().Alias)
	if ok && owner != vmID {
		return nil, api.Errorf(api.ErrConflict, "tap %s belongs to vm %s, not %s", name, owner, vmID)
	}
	if !ok && l.Type() != "tuntap" {
		return nil, api.Errorf(api.ErrConflict, "interface %s exists and is not a banger tap", name)
	}
	return l, nil
}
