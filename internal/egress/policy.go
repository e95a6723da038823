// Package egress decides and enforces what a VM may reach beyond the host:
// the policy (none, open, or an allowlist of domains and networks), the
// per-VM state the daemon keeps (policy, recent denials, proxied
// connections) and the proxy that VMs under an allowlist reach for TCP 80
// and 443: it reads the TLS SNI or HTTP Host the guest sends, checks the
// name, resolves it on the host and dials it itself, so nothing the guest
// believes about addresses matters.
package egress

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"banger/internal/api"
	"banger/internal/model"
)

// Limits on a policy.
const (
	MaxRules   = 64
	maxNameLen = 253
)

// Rule is one allow entry: a domain (exact, or Wildcard for every name
// below it) or a network, with a port (0: any port for a network, 80 and
// 443 for a domain).
type Rule struct {
	Domain   string // lower case, no trailing dot
	Wildcard bool
	Net      netip.Prefix
	Port     uint16
}

// Policy is a compiled model.EgressPolicy.
type Policy struct {
	Mode  string
	Rules []Rule
	Deny  []netip.Prefix
}

// Compile checks p and compiles it; errors are one line, for the user.
func Compile(p model.EgressPolicy) (Policy, error) {
	out := Policy{Mode: p.Mode}
	switch p.Mode {
	case model.EgressNone, model.EgressOpen:
		if len(p.Allow) > 0 {
			return Policy{}, api.Errorf(api.ErrInvalid, "--allow needs --egress allow (egress is %s)", p.Mode)
		}
	case model.EgressAllow:
	default:
		return Policy{}, api.Errorf(api.ErrInvalid, "egress %q: want none, open or allow", p.Mode)
	}
	if len(p.Allow) > MaxRules || len(p.Deny) > MaxRules {
		return Policy{}, api.Errorf(api.ErrInvalid, "egress: at most %d allow and %d deny entries", MaxRules, MaxRules)
	}
	for _, s := range p.Allow {
		r, err := ParseRule(s)
		if err != nil {
			return Policy{}, err
		}
		out.Rules = append(out.Rules, r)
	}
	for _, s := range p.Deny {
		n, err := parseNet(s)
		if err != nil {
			return Policy{}, api.Errorf(api.ErrInvalid, "deny %q: %v", s, err)
		}
		out.Deny = append(out.Deny, n)
	}
	return out, nil
}

// ParseRule parses one allow entry: NAME, *.NAME, ADDRESS or CIDR, each
// with an optional :PORT.
func ParseRule(s string) (Rule, error) {
	bad := func(format string, a ...any) (Rule, error) {
		return Rule{}, api.Errorf(api.ErrInvalid, "allow %q: %s", s, fmt.Sprintf(format, a...))
	}
	host, port := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
	}
	var r Rule
	if port != "" || strings.HasSuffix(s, ":") {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return bad("port must be 1-65535")
		}
		r.Port = uint16(n)
	}
	if host == "" {
		return bad("empty name")
	}
	if c := host[0]; c >= '0' && c <= '9' {
		n, err := parseNet(host)
		if err != nil {
			return bad("%v", err)
		}
		r.Net = n
		return r, nil
	}
	name, wild := strings.CutPrefix(strings.ToLower(host), "*.")
	name = strings.TrimSuffix(name, ".")
	if !ValidName(name) || !strings.Contains(name, ".") {
		return bad("not a domain name (want example.com, *.example.com or a CIDR)")
	}
	r.Domain, r.Wildcard = name, wild
	return r, nil
}

// parseNet parses an IPv4 address or CIDR.
func parseNet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("not an IPv4 address or CIDR (banger's VM networking is IPv4 only)")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("not an IPv4 address or CIDR (banger's VM networking is IPv4 only)")
	}
	return netip.PrefixFrom(a, 32), nil
}

// ValidName reports whether name (lower case, no trailing dot) is a host
// name: letters, digits, hyphens and underscores in dot-separated labels
// of 1-63 bytes, at most 253 bytes in all.
func ValidName(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// NormalName lower-cases name and drops a trailing dot; ok is false when
// the result is not a valid host name.
func NormalName(name string) (string, bool) {
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	return n, ValidName(n)
}

// matchesName reports whether r covers name (normalised).
func (r Rule) matchesName(name string) bool {
	if r.Domain == "" {
		return false
	}
	if r.Wildcard {
		return strings.HasSuffix(name, "."+r.Domain)
	}
	return name == r.Domain
}

// portOK reports whether r covers port.
func (r Rule) portOK(port uint16) bool {
	if r.Port != 0 {
		return r.Port == port
	}
	if r.Domain != "" {
		return port == 80 || port == 443
	}
	return true
}

// AllowsName reports whether name may be resolved for the VM (some domain
// rule covers it, on any port). Only allow mode has names to allow.
func (p Policy) AllowsName(name string) bool {
	if p.Mode != model.EgressAllow {
		return false
	}
	name, ok := NormalName(name)
	if !ok {
		return false
	}
	for _, r := range p.Rules {
		if r.matchesName(name) {
			return true
		}
	}
	return false
}

// AllowsNamePort reports whether a connection to name on port is allowed.
func (p Policy) AllowsNamePort(name string, port uint16) bool {
	if p.Mode != model.EgressAllow {
		return false
	}
	name, ok := NormalName(name)
	if !ok {
		return false
	}
	for _, r := range p.Rules {
		if r.matchesName(name) && r.portOK(port) {
			return true
		}
	}
	return false
}

// NamePorts lists the ports other than 80 and 443 that rules covering name
// allow directly (their addresses go to the VM's nftables set).
func (p Policy) NamePorts(name string) []uint16 {
	name, ok := NormalName(name)
	if !ok || p.Mode != model.EgressAllow {
		return nil
	}
	var out []uint16
	for _, r := range p.Rules {
		if r.matchesName(name) && r.Port != 0 && r.Port != 80 && r.Port != 443 {
			out = append(out, r.Port)
		}
	}
	return out
}

// AllowsAddr reports whether a network rule covers addr on port and no
// deny entry covers addr.
func (p Policy) AllowsAddr(addr netip.Addr, port uint16) bool {
	if p.Mode != model.EgressAllow || p.Denies(addr) {
		return false
	}
	addr = addr.Unmap()
	for _, r := range p.Rules {
		if r.Net.IsValid() && r.Net.Contains(addr) && r.portOK(port) {
			return true
		}
	}
	return false
}

// Denies reports whether a deny entry covers addr.
func (p Policy) Denies(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, n := range p.Deny {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}
