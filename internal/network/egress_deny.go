package network

import (
	"net/netip"

	"banger/internal/egress"
)

// RecordDenial records a denial for the VM at ip, among those vm egress
// reports (the secrets substituter's: a placeholder sent to a host its
// secret is not bound to); log and dropped are egress.Registry.Deny's.
func (m *Manager) RecordDenial(ip netip.Addr, d egress.Denial) (log bool, dropped int) {
	return m.egress.Deny(ip, d)
}
