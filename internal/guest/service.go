package guest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"banger/internal/api"
)

// Target is a VM as the guest service needs it: where its agent listens
// and the host key it must present.
type Target struct {
	ID, Name string
	// Addr is the agent's SSH address seen from the host ("ip:22" or
	// "127.0.0.1:port").
	Addr string
	// HostKey is the pinned host key (an authorized_keys line).
	HostKey string
	// GuestIP and DNSName are how the host reaches the guest's ports.
	GuestIP, DNSName string
	// Unreachable, when set, says why the guest's ports cannot be reached
	// from the host (user-mode networking).
	Unreachable string
	// Dir is the VM's folder on the host (per-VM host state lives there).
	Dir string
	// Paused is set when the VM's VMM is paused; Resolve then also returns
	// an error saying why.
	Paused bool
}

// Resolver finds running VMs for the guest service; the VM manager
// implements it, so this package never imports it.
type Resolver interface {
	// Running resolves ref (id or name) to a running VM; a VM that does
	// not run is an api.ErrConflict error (with Target.Paused set when
	// its VMM is paused).
	Running(ctx context.Context, ref string) (Target, error)
	// RememberKey records an authorized_keys line for the VM's future boots.
	RememberKey(ctx context.Context, id, line string) error
}

// Service is the guest operations the daemon offers: health, ping, ports,
// authorize-key, the SSH address, and connections for exec and workspaces.
type Service struct {
	vms    Resolver
	signer ssh.Signer
	// CallTimeout bounds one guest round trip (DefaultCallTimeout when zero).
	CallTimeout time.Duration
}

// NewService returns the guest service; signer is the daemon's SSH key.
func NewService(vms Resolver, signer ssh.Signer) *Service {
	return &Service{vms: vms, signer: signer}
}

// Dial connects to a running VM's agent. Every call on the returned client
// has the service's deadline; no lock is held while a guest answers, so a
// stuck guest holds only the requests about it.
func (s *Service) Dial(ctx context.Context, ref string) (*Client, Target, error) {
	t, err := s.vms.Running(ctx, ref)
	if err != nil {
		return nil, t, err
	}
	c, err := s.dial(ctx, t)
	return c, t, err
}

func (s *Service) dial(ctx context.Context, t Target) (*Client, error) {
	dctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	defer cancel()
	c, err := Dial(dctx, t.Addr, s.signer, t.HostKey)
	if err != nil {
		return nil, api.Errorf(api.ErrUnavailable, "vm %q: guest agent unreachable: %v", t.Name, err)
	}
	c.CallTimeout = s.CallTimeout
	return c, nil
}

// guestErr marks a guest round trip that ran out of time as unavailable
// (a frozen or overloaded guest), keeping what was asked in the message.
func guestErr(err error, format string, args ...any) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return api.Errorf(api.ErrUnavailable, "%s: %v", fmt.Sprintf(format, args...), err)
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// SSH says where the guest's SSH server is.
func (s *Service) SSH(ctx context.Context, ref string) (api.VMSSHResult, error) {
	t, err := s.vms.Running(ctx, ref)
	if err != nil {
		return api.VMSSHResult{}, err
	}
	return api.VMSSHResult{Name: t.Name, GuestIP: t.GuestIP}, nil
}

// AuthorizeKey lets a caller's public key log in: pushed to the running
// guest and recorded for future boots.
func (s *Service) AuthorizeKey(ctx context.Context, p api.VMAuthorizeKeyParams) (api.VMAuthorizeKeyResult, error) {
	line, err := AuthorizedKeyLine(p.PublicKey)
	if err != nil {
		return api.VMAuthorizeKeyResult{}, err
	}
	c, t, err := s.Dial(ctx, p.IDOrName)
	if err != nil {
		return api.VMAuthorizeKeyResult{}, err
	}
	defer c.Close()
	if err := c.AuthorizeKey(ctx, line); err != nil {
		return api.VMAuthorizeKeyResult{}, guestErr(err, "authorize key in vm %q", t.Name)
	}
	if err := s.vms.RememberKey(ctx, t.ID, line); err != nil {
		return api.VMAuthorizeKeyResult{}, fmt.Errorf("authorize key in vm %q: record it for future boots: %w", t.Name, err)
	}
	host, port, _ := net.SplitHostPort(t.Addr)
	pn, _ := strconv.Atoi(port)
	return api.VMAuthorizeKeyResult{Name: t.Name, Host: host, Port: pn, HostKey: t.HostKey, DNSName: t.DNSName}, nil
}

// AuthorizedKeyLine validates one authorized_keys line and normalises it.
func AuthorizedKeyLine(key string) (string, error) {
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil || len(strings.TrimSpace(string(rest))) > 0 {
		return "", api.Errorf(api.ErrInvalid, "public key %.40q is not one authorized_keys line", key)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		line += " " + comment
	}
	return line, nil
}

// SameKey reports whether two authorized_keys lines hold the same key.
func SameKey(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	return len(fa) >= 2 && len(fb) >= 2 && fa[0] == fb[0] && fa[1] == fb[1]
}

// Health runs the guest's checks, the clock comparison among them (decided
// once, by the client).
func (s *Service) Health(ctx context.Context, ref string) (api.VMHealthResult, error) {
	t, err := s.vms.Running(ctx, ref)
	if t.Paused {
		return api.VMHealthResult{Name: t.Name, Checks: []api.VMHealthCheck{{Name: "vm", OK: false, Detail: err.Error()}}}, nil
	}
	if err != nil {
		return api.VMHealthResult{Name: t.Name}, err
	}
	res := api.VMHealthResult{Name: t.Name}
	c, err := s.dial(ctx, t)
	if err != nil {
		res.Checks = []api.VMHealthCheck{{Name: "agent", OK: false, Detail: err.Error()}}
		return res, nil
	}
	defer c.Close()
	h, err := c.Checks(ctx)
	if err != nil {
		res.Checks = []api.VMHealthCheck{{Name: "agent", OK: false, Detail: err.Error()}}
		return res, nil
	}
	res.Healthy = h.OK
	for _, ch := range h.Checks {
		res.Checks = append(res.Checks, api.VMHealthCheck{Name: ch.Name, OK: ch.OK, Detail: ch.Detail})
	}
	return res, nil
}

// Ping checks the VM answers on its network address (TCP to its SSH port).
func (s *Service) Ping(ctx context.Context, ref string) (api.VMPingResult, error) {
	t, err := s.vms.Running(ctx, ref)
	if err != nil {
		return api.VMPingResult{Name: t.Name}, err
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return api.VMPingResult{Name: t.Name, Alive: false}, nil
	}
	conn.Close()
	return api.VMPingResult{Name: t.Name, Alive: true}, nil
}

// Ports lists the guest's listening sockets with endpoints.
func (s *Service) Ports(ctx context.Context, ref string) (api.VMPortsResult, error) {
	c, t, err := s.Dial(ctx, ref)
	if err != nil {
		return api.VMPortsResult{}, err
	}
	defer c.Close()
	ports, err := c.Ports(ctx)
	if err != nil {
		return api.VMPortsResult{}, guestErr(err, "ports of vm %q", t.Name)
	}
	host := t.DNSName
	if host == "" {
		host = t.GuestIP
	}
	for i := range ports {
		switch {
		case isLoopback(ports[i].BindAddress):
			ports[i].Endpoint = "(guest loopback only: not reachable from the host)"
		case t.Unreachable != "":
			ports[i].Endpoint = "(" + t.Unreachable + ": not reachable from the host)"
		default:
			ports[i].Endpoint = net.JoinHostPort(host, strconv.Itoa(ports[i].Port))
		}
	}
	return api.VMPortsResult{Name: t.Name, DNSName: t.DNSName, Ports: ports}, nil
}

func isLoopback(addr string) bool {
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsLoopback()
}
