package network

import (
	"context"
	"net"
	"net/netip"

	"banger/internal/api"
)

// The addresses of user-mode networking: QEMU's built-in (slirp) network,
// whose defaults are these. The guest is always 10.0.2.15.
var (
	userAddress = netip.MustParsePrefix("10.0.2.15/24")
	userGateway = netip.MustParseAddr("10.0.2.2")
	userDNS     = netip.MustParseAddr("10.0.2.3")
)

// UserMode attaches VMs with the VMM's user-mode networking, used when
// bridge networking is unavailable: the guest reaches out through the VMM
// (always NAT), the host reaches the guest's SSH on a forwarded loopback
// port, and nothing on the host changes. It implements the same methods as
// Manager.
type UserMode struct {
	// Reason says why bridge networking is not in use.
	Reason string
	// freePort picks the loopback port forwarded to the guest's SSH (tests
	// fake it).
	freePort func() (int, error)
}

// NewUserMode returns user-mode networking; reason says why the bridge is
// not in use.
func NewUserMode(reason string) *UserMode {
	return &UserMode{Reason: reason, freePort: freeLoopbackPort}
}

// Attach picks a free loopback port for the guest's SSH. nat is ignored:
// a user-mode guest always reaches out through the VMM.
func (u *UserMode) Attach(ctx context.Context, vmID string, nat bool) (Attachment, error) {
	if err := checkVMID(vmID); err != nil {
		return Attachment{}, err
	}
	port, err := u.freePort()
	if err != nil {
		return Attachment{}, err
	}
	return Attachment{Mode: ModeUser, MAC: MACFor(vmID).String(), Address: userAddress, Gateway: userGateway,
		DNS: []netip.Addr{userDNS}, SSHHostPort: port}, nil
}

// Detach does nothing: user-mode networking holds nothing on the host
// beyond the VMM's own process.
func (u *UserMode) Detach(ctx context.Context, vmID string) error { return nil }

// SetNAT refuses: NAT cannot be switched in user-mode networking.
func (u *UserMode) SetNAT(ctx context.Context, vmID string, on bool) error {
	return api.Errorf(api.ErrUnavailable, "NAT cannot change: the vm uses user-mode networking (%s)", u.Reason)
}

// freeLoopbackPort is a TCP port free on 127.0.0.1 right now.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, api.Errorf(api.ErrUnavailable, "no free loopback port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Why says why bridge networking is not in use.
func (u *UserMode) Why() string { return u.Reason }
