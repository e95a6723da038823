package network

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"banger/internal/api"
)

// BridgeInfo describes banger's bridge as found on the host.
type BridgeInfo struct {
	Name    string
	Gateway netip.Addr
	Subnet  netip.Prefix
}

// FindBridge looks up banger's bridge: the named one, or with name "" the
// bridge carrying banger's alias. It needs no privileges (for the CLI).
func FindBridge(name string) (BridgeInfo, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return BridgeInfo{}, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "bridge" || a.Alias != aliasOwner || (name != "" && a.Name != name) {
			continue
		}
		prefixes, err := bridgePrefixes(l)
		if err != nil {
			return BridgeInfo{}, err
		}
		if len(prefixes) == 0 {
			return BridgeInfo{}, api.Errorf(api.ErrUnavailable, "bridge %s has no IPv4 address", a.Name)
		}
		p := prefixes[0]
		return BridgeInfo{Name: a.Name, Gateway: p.Addr(), Subnet: p.Masked()}, nil
	}
	what := "banger's bridge"
	if name != "" {
		what = "banger bridge " + name
	}
	return BridgeInfo{}, api.Errorf(api.ErrNotFound, "%s not found: %w", what, errors.New("is bangerd running with bridge networking?"))
}
