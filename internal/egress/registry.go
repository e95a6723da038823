package egress

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"banger/internal/model"
)

// MaxDenials is how many recent denials are kept per VM.
const MaxDenials = 64

// LoggedDenials is how many denials of one VM are worth a log line per
// DenialLogWindow: a guest cannot flood the daemon's log (all are still
// recorded for vm egress, and each window's first unlogged one says how
// many went unlogged in the window before).
const (
	LoggedDenials   = 20
	DenialLogWindow = time.Minute
)

// Denial is one refused attempt.
type Denial = model.EgressDenial

// Registry holds the policy of every VM under banger's network, by VM id
// and by address (the address is bound to the VM's tap by the tap guards,
// so a source address identifies the VM), its recent denials and its live
// proxied connections. It is safe for concurrent use.
type Registry struct {
	mu   sync.Mutex
	byID map[string]*vmState
	byIP map[netip.Addr]*vmState
}

type vmState struct {
	id      string
	ip      netip.Addr
	policy  Policy
	denials []Denial
	conns   map[*proxied]struct{}
	// The log budget: denials logged and left unlogged since windowAt.
	windowAt         time.Time
	logged, unlogged int
}

// proxied is one live proxied connection: what it was allowed for and how
// to end it.
type proxied struct {
	name  string
	dst   netip.AddrPort
	close func()
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byID: map[string]*vmState{}, byIP: map[netip.Addr]*vmState{}}
}

// Set records vm id's address and policy. Live proxied connections the new
// policy no longer allows are closed at once. Denials are kept.
func (r *Registry) Set(id string, ip netip.Addr, p Policy) {
	ip = ip.Unmap()
	r.mu.Lock()
	s := r.byID[id]
	if s == nil {
		s = &vmState{id: id, conns: map[*proxied]struct{}{}}
		r.byID[id] = s
	}
	if s.ip.IsValid() && s.ip != ip {
		delete(r.byIP, s.ip)
	}
	s.ip, s.policy = ip, p
	r.byIP[ip] = s
	var stale []*proxied
	for c := range s.conns {
		if !p.allowsLive(c) {
			stale = append(stale, c)
			delete(s.conns, c)
		}
	}
	r.mu.Unlock()
	for _, c := range stale {
		c.close()
	}
}

// allowsLive reports whether a proxied connection may go on under p.
func (p Policy) allowsLive(c *proxied) bool {
	if p.Denies(c.dst.Addr()) {
		return false
	}
	if c.name != "" && p.AllowsNamePort(c.name, c.dst.Port()) {
		return true
	}
	return p.AllowsAddr(c.dst.Addr(), c.dst.Port())
}

// Remove forgets vm id, closing its proxied connections.
func (r *Registry) Remove(id string) {
	r.mu.Lock()
	s := r.byID[id]
	if s == nil {
		r.mu.Unlock()
		return
	}
	delete(r.byID, id)
	if r.byIP[s.ip] == s {
		delete(r.byIP, s.ip)
	}
	conns := s.conns
	s.conns = map[*proxied]struct{}{}
	r.mu.Unlock()
	for c := range conns {
		c.close()
	}
}

// Lookup returns the VM and policy of source address ip.
func (r *Registry) Lookup(ip netip.Addr) (id string, p Policy, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.byIP[ip.Unmap()]
	if s == nil {
		return "", Policy{}, false
	}
	return s.id, s.policy, true
}

// PolicyOf returns vm id's policy.
func (r *Registry) PolicyOf(id string) (Policy, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.byID[id]
	if s == nil {
		return Policy{}, false
	}
	return s.policy, true
}

// Deny records a denial for the VM at ip (nothing when unknown). log says
// whether the caller should log it (LoggedDenials per DenialLogWindow and
// VM); dropped is how many went unlogged in the window before, to say so
// in that line.
func (r *Registry) Deny(ip netip.Addr, d Denial) (log bool, dropped int) {
	if d.Time.IsZero() {
		d.Time = time.Now().UTC()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.byIP[ip.Unmap()]
	if s == nil {
		return false, 0
	}
	if len(s.denials) >= MaxDenials {
		s.denials = append(s.denials[:0], s.denials[1:]...)
	}
	s.denials = append(s.denials, d)
	if d.Time.Sub(s.windowAt) >= DenialLogWindow || d.Time.Before(s.windowAt) {
		dropped = s.unlogged
		s.windowAt, s.logged, s.unlogged = d.Time, 0, 0
	}
	if s.logged >= LoggedDenials {
		s.unlogged++
		return false, 0
	}
	s.logged++
	return true, dropped
}

// Denials returns vm id's recent denials, oldest first.
func (r *Registry) Denials(id string) []Denial {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.byID[id]
	if s == nil {
		return nil
	}
	return append([]Denial(nil), s.denials...)
}

// track registers a live connection of the VM at ip; the returned function
// forgets it. ok is false when the VM is gone or the policy changed so that
// the connection is no longer allowed (the caller closes it).
func (r *Registry) track(ip netip.Addr, c *proxied) (untrack func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.byIP[ip.Unmap()]
	if s == nil || !s.policy.allowsLive(c) {
		return nil, false
	}
	s.conns[c] = struct{}{}
	return func() {
		r.mu.Lock()
		delete(s.conns, c)
		r.mu.Unlock()
	}, true
}

// closeBoth closes two connections (ending a splice).
func closeBoth(a, b net.Conn) func() {
	return func() { a.Close(); b.Close() }
}

// CountAllow counts the VMs under an allowlist.
func (r *Registry) CountAllow() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.byID {
		if s.policy.Mode == model.EgressAllow {
			n++
		}
	}
	return n
}
