package egress

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

var (
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10") // carrier-grade NAT
	thisNet     = netip.MustParsePrefix("0.0.0.0/8")
	reserved    = netip.MustParsePrefix("240.0.0.0/4") // with broadcast
)

// Refused reports why the proxy must not dial a for a name (DNS
// rebinding: a public name answering with an inside address), or "" when
// it may: loopback, private, shared (CGNAT), link-local, multicast,
// unspecified and reserved addresses, the bridge subnet and the host's own
// addresses are refused. Only IPv4 is dialled.
func Refused(a netip.Addr, bridge netip.Prefix, local func(netip.Addr) bool) string {
	a = a.Unmap()
	switch {
	case !a.Is4():
		return "not IPv4"
	case a.IsLoopback():
		return "loopback address"
	case a.IsPrivate(), sharedSpace.Contains(a):
		return "private address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local address"
	case a.IsMulticast(), a.IsUnspecified(), thisNet.Contains(a), reserved.Contains(a):
		return "reserved address"
	case bridge.IsValid() && bridge.Contains(a):
		return "banger's bridge address"
	case local != nil && local(a):
		return "an address of this host"
	}
	return ""
}

// hostAddrs caches the host's own addresses for a few seconds.
type hostAddrs struct {
	mu    sync.Mutex
	at    time.Time
	addrs map[netip.Addr]bool
}

func (h *hostAddrs) has(a netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.addrs == nil || time.Since(h.at) > 5*time.Second {
		h.addrs = map[netip.Addr]bool{}
		if list, err := net.InterfaceAddrs(); err == nil {
			for _, x := range list {
				if p, ok := x.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(p.IP); ok {
						h.addrs[ip.Unmap()] = true
					}
				}
			}
		}
		h.at = time.Now()
	}
	return h.addrs[a.Unmap()]
}
