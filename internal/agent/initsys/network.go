package initsys

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"banger/internal/bootcfg"
)

// linkWait bounds the wait for the configured interface to appear.
const linkWait = 10 * time.Second

// ConfigureNetwork brings up lo and, when n is set, the interface whose MAC
// is n.MAC: address, link up, default route via n.Gateway.
func ConfigureNetwork(ctx context.Context, n *bootcfg.Network, log *slog.Logger) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("network: find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("network: bring up lo: %w", err)
	}
	if n == nil {
		log.Info("no network configured")
		return nil
	}
	mac, err := net.ParseMAC(n.MAC)
	if err != nil {
		return fmt.Errorf("network: bad mac %q: %w", n.MAC, err)
	}
	addr, err := netlink.ParseAddr(n.Address)
	if err != nil {
		return fmt.Errorf("network: bad address %q: %w", n.Address, err)
	}
	ctx, cancel := context.WithTimeout(ctx, linkWait)
	defer cancel()
	link, err := linkByMAC(ctx, mac)
	if err != nil {
		return err
	}
	name := link.Attrs().Name
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("network: add %s to %s: %w", n.Address, name, err)
	}
	// Announce the address when the link comes up (gratuitous ARP): the
	// host has been trying to reach the guest since the VMM started, and an
	// unanswered ARP of its is retried only once a second.
	if err := announceOnUp(name); err != nil {
		log.Warn("network: gratuitous ARP not enabled", "interface", name, "err", err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("network: bring up %s: %w", name, err)
	}
	if n.Gateway != "" {
		gw := net.ParseIP(n.Gateway)
		if gw == nil {
			return fmt.Errorf("network: bad gateway %q", n.Gateway)
		}
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw, Scope: netlink.SCOPE_UNIVERSE}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("network: default route via %s on %s: %w", gw, name, err)
		}
	}
	log.Info("network configured", "interface", name, "address", n.Address, "gateway", n.Gateway)
	return nil
}

// announceOnUp sets arp_notify on the interface name, so the kernel sends a
// gratuitous ARP for its addresses when it comes up. The host's pending
// neighbour entry for the guest is then resolved at once, instead of at its
// next ARP retry (up to a second later).
func announceOnUp(name string) error {
	if strings.ContainsAny(name, "/") || name == "" || name == "." || name == ".." {
		return fmt.Errorf("bad interface name %q", name)
	}
	return os.WriteFile("/proc/sys/net/ipv4/conf/"+name+"/arp_notify", []byte("1\n"), 0o644)
}

// linkByMAC polls the interface list until one has mac or ctx ends.
func linkByMAC(ctx context.Context, mac net.HardwareAddr) (netlink.Link, error) {
	for {
		links, err := netlink.LinkList()
		if err != nil {
			return nil, fmt.Errorf("network: list interfaces: %w", err)
		}
		var seen []string
		for _, l := range links {
			if strings.EqualFold(l.Attrs().HardwareAddr.String(), mac.String()) {
				return l, nil
			}
			seen = append(seen, l.Attrs().Name+"="+l.Attrs().HardwareAddr.String())
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("network: no interface with mac %s (have %s; is virtio_net loaded?)", mac, strings.Join(seen, " "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// SetClockFloor moves the clock forward to floor (unix ns) when it is behind;
// it reports whether the clock was set.
func SetClockFloor(floor int64) (bool, error) {
	if floor <= 0 || time.Now().UnixNano() >= floor {
		return false, nil
	}
	tv := unix.NsecToTimeval(floor)
	if err := unix.Settimeofday(&tv); err != nil {
		return false, fmt.Errorf("set clock: %w", err)
	}
	return true, nil
}
