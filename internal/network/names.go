package network

import (
	"crypto/sha256"
	"net"
	"strings"

	"banger/internal/api"
)

// aliasOwner marks the bridge as banger's; ports carry portAlias(vmID, bridge).
const (
	aliasOwner      = "banger"
	aliasPortPrefix = "banger:"
	tapPrefix       = "bt"
)

// TapName is the host tap device of a VM: "bt" and the first 12 characters
// of its id, so it fits IFNAMSIZ.
func TapName(vmID string) string {
	if len(vmID) > 12 {
		vmID = vmID[:12]
	}
	return tapPrefix + vmID
}

// MACFor derives a VM's guest MAC from its id: locally administered,
// unicast, stable for the life of the VM.
func MACFor(vmID string) net.HardwareAddr {
	return derivedMAC("vm:" + vmID)
}

func derivedMAC(seed string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(seed))
	mac := make(net.HardwareAddr, 6)
	mac[0] = 0x02
	copy(mac[1:], sum[:5])
	return mac
}

// checkVMID rejects ids that cannot name a tap device.
func checkVMID(vmID string) error {
	if vmID == "" {
		return api.Errorf(api.ErrInvalid, "network: empty vm id")
	}
	for _, r := range vmID {
		ok := r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return api.Errorf(api.ErrInvalid, "network: vm id %q: only letters, digits, '-' and '_' are allowed", vmID)
		}
	}
	return nil
}

// portAlias labels a VM's port with its VM and bridge:
// "banger:VMID@BRIDGE", so that daemons on different bridges never take
// each other's taps for their own.
func portAlias(vmID, bridge string) string {
	return aliasPortPrefix + vmID + "@" + bridge
}

// portOwner returns the vm id and bridge recorded in a port's alias, if
// any (bridge is "" in the older "banger:VMID" form).
func portOwner(alias string) (vmID, bridge string, ok bool) {
	rest, ok := strings.CutPrefix(alias, aliasPortPrefix)
	if !ok {
		return "", "", false
	}
	vmID, bridge, _ = strings.Cut(rest, "@")
	return vmID, bridge, vmID != ""
}
