package model

import "time"

// Egress modes: what a VM may reach beyond the host.
const (
	EgressNone  = "none"  // nothing beyond the host (NAME.vm DNS only)
	EgressOpen  = "open"  // NAT to anywhere (the old --nat)
	EgressAllow = "allow" // only the Allow list, enforced by banger
)

// EgressPolicy is a VM's outbound policy. Allow lists domains (`github.com`,
// `*.npmjs.org`), addresses and CIDRs, each with an optional `:PORT`; Deny
// lists CIDRs that are never reached, whatever else allows.
type EgressPolicy struct {
	Mode  string   `json:"mode"`
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

// EffectiveEgress is v's policy: Egress when it says allow, otherwise open
// or none as NATEnabled says, with Egress's deny list; a VM with secrets
// may also reach their hosts (none becomes an allowlist of just them).
func (v VMRecord) EffectiveEgress() EgressPolicy {
	return withSecrets(v.baseEgress(), v.Secrets)
}

// baseEgress is v's policy without its secrets' hosts.
func (v VMRecord) baseEgress() EgressPolicy {
	if v.Egress != nil && v.Egress.Mode == EgressAllow {
		return *v.Egress
	}
	p := EgressPolicy{Mode: EgressNone}
	if v.NATEnabled {
		p.Mode = EgressOpen
	}
	if v.Egress != nil {
		p.Deny = v.Egress.Deny
	}
	return p
}

// EgressDenial is one outbound attempt banger refused.
type EgressDenial struct {
	Time time.Time `json:"time"`
	// Via is where it was refused: "dns", "proxy" or "secrets" (a
	// placeholder sent to a host its secret is not bound to).
	Via string `json:"via"`
	// Destination is the address and port, when known.
	Destination string `json:"destination,omitempty"`
	// Name is the name asked for (DNS query, TLS SNI or HTTP Host), when known.
	Name   string `json:"name,omitempty"`
	Reason string `json:"reason"`
}
