package api

import "banger/internal/model"

// Wire types of guest port forwarding (vm forward, vm create|set --forward).

// Forward modes of a VM.
const (
	ForwardOff  = "off"  // only the forwards asked for explicitly
	ForwardAuto = "auto" // also every new TCP listener of the guest (see docs)
)

// VMForwardParams adds a forward from the host's loopback to a guest port.
// HostAddr is a loopback address ("" means 127.0.0.1, plus ::1 when the host
// has IPv6 loopback); HostPort 0 means GuestPort. With Remap a busy host
// port is replaced by a free one (shown in the result) instead of failing.
type VMForwardParams struct {
	IDOrName  string `json:"id_or_name"`
	HostAddr  string `json:"host_addr,omitempty"`
	HostPort  int    `json:"host_port,omitempty"`
	GuestPort int    `json:"guest_port"`
	Remap     bool   `json:"remap,omitempty"`
	// UnixPath, instead of a host port, makes the forward a Unix socket at
	// that absolute path, mode 0600, created as the caller.
	UnixPath string `json:"unix_path,omitempty"`
}

// VMForwardRemoveParams removes the explicit forward on HostPort.
type VMForwardRemoveParams struct {
	IDOrName string `json:"id_or_name"`
	HostPort int    `json:"host_port,omitempty"`
	UnixPath string `json:"unix_path,omitempty"` // or the Unix socket forward at this path
}

// VMForward is one forward (model.Forward: vm list and vm show carry them too).
type VMForward = model.Forward

// VMForwardResult is the forward just made.
type VMForwardResult struct {
	Forward VMForward `json:"forward"`
}

// VMForwardListResult lists a VM's forwards: explicit first, then auto
// ones and auto conflicts.
type VMForwardListResult struct {
	Name     string      `json:"name"`
	Mode     string      `json:"mode"`
	Remap    bool        `json:"remap,omitempty"`
	Forwards []VMForward `json:"forwards"`
}
