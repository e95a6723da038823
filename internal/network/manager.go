package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"banger/internal/api"
	"banger/internal/egress"
)

// IPStore keeps VM address allocations (banger's SQLite store implements
// it; an address is never held by two VMs).
type IPStore interface {
	// AllocateIP returns the address vmID already holds, or else the first
	// address of pool that no VM holds, recording it for vmID. It fails
	// when every address of pool is taken.
	AllocateIP(ctx context.Context, vmID string, pool []netip.Addr) (netip.Addr, error)
	// ReleaseIP forgets vmID's address; releasing nothing is not an error.
	ReleaseIP(ctx context.Context, vmID string) error
	// ListIPs returns every allocation, vm id to address.
	ListIPs(ctx context.Context) (map[string]netip.Addr, error)
}

// Manager owns banger's bridge, the VMs' taps, its nftables tables (inet
// and netdev TableName(bridge)) and IP forwarding. Its methods are safe for concurrent use.
type Manager struct {
	cfg   Config
	ips   IPStore
	log   *slog.Logger
	table string // nftables table name, from the bridge

	mu     sync.Mutex
	subnet netip.Prefix // set by Setup

	// natView mirrors the NAT set, for the DNS server (which must not
	// wait on mu).
	natMu   sync.RWMutex
	natView map[netip.Addr]bool

	// egress holds the VMs' egress policies, for the guards, the DNS
	// server and the egress proxy.
	egress *egress.Registry

	// newPort makes the host side of a VM's link (a tap; tests use veths).
	newPort func(name string) (netlink.Link, error)
	// forwardPath is the IPv4 forwarding sysctl.
	forwardPath string
}

// New checks cfg and returns a Manager; it changes nothing on the host.
func New(cfg Config, ips IPStore, log *slog.Logger) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if ips == nil {
		return nil, errors.New("network: no address store")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		cfg:         cfg,
		ips:         ips,
		log:         log,
		table:       TableName(cfg.Bridge),
		newPort:     createTap,
		egress:      egress.NewRegistry(),
		forwardPath: "/proc/sys/net/ipv4/ip_forward",
	}, nil
}

// Available reports why bridge networking cannot work here (nil when it
// can): banger needs CAP_NET_ADMIN, /dev/net/tun and nftables. The caller
// falls back to user-mode networking otherwise.
func (m *Manager) Available() error {
	ok, err := hasNetAdmin("/proc/self/status")
	if err != nil {
		return api.Errorf(api.ErrUnavailable, "bridge networking: %w", err)
	}
	if !ok {
		return api.Errorf(api.ErrUnavailable, "bridge networking needs root (CAP_NET_ADMIN)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return api.Errorf(api.ErrUnavailable, "bridge networking needs /dev/net/tun: %w", err)
	}
	conn, err := nftables.New()
	if err == nil {
		_, err = conn.ListTablesOfFamily(nftables.TableFamilyINet)
	}
	if err != nil {
		return api.Errorf(api.ErrUnavailable, "bridge networking needs nftables: %w", err)
	}
	return nil
}

// hasNetAdmin reads the effective capability set from a /proc status file.
func hasNetAdmin(statusPath string) (bool, error) {
	f, err := os.Open(statusPath)
	if err != nil {
		return false, fmt.Errorf("read capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return false, fmt.Errorf("read capabilities: parse %q: %w", v, err)
		}
		const capNetAdmin = 12
		return caps&(1<<capNetAdmin) != 0, nil
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read capabilities: %w", err)
	}
	return false, fmt.Errorf("read capabilities: no CapEff line in %s", statusPath)
}

// Table is the name of the Manager's nftables table (family inet).
func (m *Manager) Table() string { return m.table }

// Subnet is the bridge subnet chosen by Setup (invalid before Setup).
func (m *Manager) Subnet() netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.subnet
}

// Setup makes the bridge, its address and the nftables table, and can be
// run again at any time: it keeps the taps and NAT members that exist.
func (m *Manager) Setup(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	subnet, created, err := m.ensureBridge()
	if err != nil {
		return fmt.Errorf("network setup: %w", err)
	}
	if err := m.installTable(ctx, subnet); err != nil {
		if created {
			m.deleteBridge()
		}
		return fmt.Errorf("network setup: %w", err)
	}
	m.subnet = subnet
	m.log.Info("network ready", "bridge", m.cfg.Bridge, "subnet", subnet, "gateway", gatewayOf(subnet), "nftables", "inet "+m.table)
	return nil
}

// Teardown removes everything banger made: taps, the nftables table, the
// bridge, and restores IP forwarding. Running VMs lose their network; the
// daemon does not call it on a normal stop. Address allocations are kept
// (Reconcile releases those of VMs that are gone).
func (m *Manager) Teardown(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	br, brErr := m.ourBridge()
	known, err := m.knownTaps(ctx, nil)
	if err != nil {
		errs = append(errs, err)
	}
	ports, err := m.ownedPorts(br, known)
	if err != nil {
		errs = append(errs, err)
	}
	for _, p := range ports {
		if err := netlink.LinkDel(p.link); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", p.link.Attrs().Name, err))
		}
	}
	if err := m.deleteTable(); err != nil {
		errs = append(errs, err)
	}
	if brErr != nil {
		errs = append(errs, brErr)
	} else if br != nil {
		if err := netlink.LinkDel(br); err != nil {
			errs = append(errs, fmt.Errorf("delete bridge %s: %w", m.cfg.Bridge, err))
		}
	}
	if err := m.setForwarding(false); err != nil {
		errs = append(errs, err)
	}
	m.subnet = netip.Prefix{}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network teardown: %w", err)
	}
	return nil
}

// ready returns the subnet, or an error when Setup has not run.
func (m *Manager) ready() (netip.Prefix, error) {
	if !m.subnet.IsValid() {
		return netip.Prefix{}, api.Errorf(api.ErrUnavailable, "network: bridge %s is not set up", m.cfg.Bridge)
	}
	return m.subnet, nil
}
