// Package network gives banger's VMs a host bridge, one tap per VM, an
// address each, NAT to the outside world on request, and a DNS server for
// NAME.vm. Everything it creates is marked as banger's (a link alias, its own
// nftables table) and nothing else on the host is touched.
package network

import (
	"fmt"
	"net/netip"
	"strings"

	"banger/internal/api"
)

// Defaults used when a Config field is left empty.
const (
	DefaultBridge = "banger0"
	DefaultDomain = "vm"
	// DefaultHostRunDir is Config.HostRunDir's default.
	DefaultHostRunDir = "/run/banger/network"
)

// DefaultSubnet is the bridge subnet used when Config.Subnet is not set.
var DefaultSubnet = netip.MustParsePrefix("172.30.0.0/24")

// privateRange is where AutoSubnet looks for a free /24.
var privateRange = netip.MustParsePrefix("172.16.0.0/12")

// Config configures a Manager.
type Config struct {
	// Bridge is the host bridge name (default banger0).
	Bridge string
	// Subnet is the bridge subnet (default 172.30.0.0/24). The gateway is
	// its first address.
	Subnet netip.Prefix
	// AutoSubnet lets Setup pick another free /24 in 172.16.0.0/12 when
	// Subnet clashes with a host route, instead of failing.
	AutoSubnet bool
	// Domain is the DNS domain VMs are reachable under (default vm).
	Domain string
	// AllowVMToVM lets VMs on the bridge reach each other.
	AllowVMToVM bool
	// StateDir is banger's state directory; the network keeps small
	// files under StateDir/network.
	StateDir string
	// ResolvConf is the host resolver file DNS forwards to
	// (default /etc/resolv.conf).
	ResolvConf string
	// HostRunDir holds what every banger daemon of this host shares
	// (default /run/banger/network, root's, 0700): the IPv4 forwarding value
	// found before any of them turned it on, restored by whichever needs it
	// last. It lasts as long as that setting does: until the host reboots.
	HostRunDir string
}

// ParseSubnet reads a configured subnet: "" means the default, "auto" the
// default with AutoSubnet, anything else an IPv4 CIDR network.
func ParseSubnet(s string) (prefix netip.Prefix, auto bool, err error) {
	switch strings.TrimSpace(s) {
	case "":
		return DefaultSubnet, false, nil
	case "auto":
		return DefaultSubnet, true, nil
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, false, api.Errorf(api.ErrInvalid, "network subnet %q: want a CIDR such as 172.30.0.0/24 or \"auto\"", s)
	}
	return p, false, checkSubnet(p)
}

// withDefaults returns cfg with empty fields filled in, or an error for a
// field that cannot work.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if err := checkIfName(cfg.Bridge); err != nil {
		return cfg, fmt.Errorf("network bridge: %w", err)
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = DefaultSubnet
	}
	if err := checkSubnet(cfg.Subnet); err != nil {
		return cfg, err
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	cfg.Domain = strings.ToLower(strings.Trim(cfg.Domain, "."))
	if cfg.Domain == "" || strings.ContainsAny(cfg.Domain, " \t/\\") {
		return cfg, api.Errorf(api.ErrInvalid, "network domain %q is not a DNS name", cfg.Domain)
	}
	if cfg.StateDir == "" {
		return cfg, api.Errorf(api.ErrInvalid, "network: state directory not set")
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.HostRunDir == "" {
		cfg.HostRunDir = DefaultHostRunDir
	}
	return cfg, nil
}

// checkSubnet accepts IPv4 networks from /16 to /30 given by their network
// address.
func checkSubnet(p netip.Prefix) error {
	if !p.Addr().Is4() {
		return api.Errorf(api.ErrInvalid, "network subnet %s: only IPv4 subnets are supported", p)
	}
	if p.Bits() < 16 || p.Bits() > 30 {
		return api.Errorf(api.ErrInvalid, "network subnet %s: prefix length must be between /16 and /30", p)
	}
	if p.Masked() != p {
		return api.Errorf(api.ErrInvalid, "network subnet %s is not a network address; did you mean %s?", p, p.Masked())
	}
	return nil
}

// gatewayOf is the bridge's own address: the first host of the subnet.
func gatewayOf(p netip.Prefix) netip.Addr {
	return p.Masked().Addr().Next()
}

// poolOf lists the addresses VMs may get: every host of the subnet but the
// gateway, the network and the broadcast address.
func poolOf(p netip.Prefix) []netip.Addr {
	p = p.Masked()
	var pool []netip.Addr
	for a := gatewayOf(p).Next(); p.Contains(a); a = a.Next() {
		if !p.Contains(a.Next()) {
			break // broadcast
		}
		pool = append(pool, a)
	}
	return pool
}

// checkIfName rejects names the kernel would refuse as interface names.
func checkIfName(name string) error {
	if name == "" || len(name) > 15 {
		return api.Errorf(api.ErrInvalid, "interface name %q must be 1 to 15 characters", name)
	}
	for _, r := range name {
		if r <= ' ' || r == '/' || r == ':' || r > '~' {
			return api.Errorf(api.ErrInvalid, "interface name %q has an invalid character %q", name, r)
		}
	}
	return nil
}
