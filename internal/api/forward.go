package api

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

// VMForward is one forward. HostAddrs are the loopback addresses the daemon
// listens on. Auto forwards follow the guest's listeners. Conflict, when
// set, says why the forward is not listening (e.g. `host port 3000 is held
// by a host process`); such a forward carries no traffic.
type VMForward struct {
	HostAddrs []string `json:"host_addrs,omitempty"`
	HostPort  int      `json:"host_port"`
	UnixPath  string   `json:"unix_path,omitempty"`
	GuestPort int      `json:"guest_port"`
	Auto      bool     `json:"auto,omitempty"`
	Conflict  string   `json:"conflict,omitempty"`
}

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
