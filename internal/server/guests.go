package server

import (
	"context"

	"banger/internal/api"
)

// GuestService runs operations inside running VMs through their agent
// (implemented by internal/guest).
type GuestService interface {
	SSH(ctx context.Context, ref string) (api.VMSSHResult, error)
	AuthorizeKey(ctx context.Context, p api.VMAuthorizeKeyParams) (api.VMAuthorizeKeyResult, error)
	Health(ctx context.Context, ref string) (api.VMHealthResult, error)
	Ping(ctx context.Context, ref string) (api.VMPingResult, error)
	Ports(ctx context.Context, ref string) (api.VMPortsResult, error)
}

func (s *Server) vmSSH(c *call) (any, error) {
	ref, err := guestRef(s, c)
	if err != nil {
		return nil, err
	}
	return s.svc.Guests.SSH(c.ctx, ref)
}

func (s *Server) vmAuthorizeKey(c *call) (any, error) {
	if s.svc.Guests == nil {
		return nil, missing(vmsCap)
	}
	p, err := decode[api.VMAuthorizeKeyParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id_or_name", p.IDOrName); err != nil {
		return nil, err
	}
	if err := required("public_key", p.PublicKey); err != nil {
		return nil, err
	}
	return s.svc.Guests.AuthorizeKey(c.ctx, p)
}

func (s *Server) vmHealth(c *call) (any, error) {
	ref, err := guestRef(s, c)
	if err != nil {
		return nil, err
	}
	return s.svc.Guests.Health(c.ctx, ref)
}

func (s *Server) vmPing(c *call) (any, error) {
	ref, err := guestRef(s, c)
	if err != nil {
		return nil, err
	}
	return s.svc.Guests.Ping(c.ctx, ref)
}

func (s *Server) vmPorts(c *call) (any, error) {
	ref, err := guestRef(s, c)
	if err != nil {
		return nil, err
	}
	return s.svc.Guests.Ports(c.ctx, ref)
}

// guestRef decodes the VM named by a guest route.
func guestRef(s *Server, c *call) (string, error) {
	if s.svc.Guests == nil {
		return "", missing(vmsCap)
	}
	p, err := decode[api.VMRefParams](c)
	if err != nil {
		return "", err
	}
	return p.IDOrName, required("id_or_name", p.IDOrName)
}
