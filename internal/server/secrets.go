package server

import (
	"context"

	"banger/internal/api"
	"banger/internal/model"
)

// SecretService keeps secrets (internal/secrets). No method returns a
// value: no response carries one.
type SecretService interface {
	Add(ctx context.Context, p api.SecretAddParams) (model.Secret, error)
	List(ctx context.Context) ([]model.Secret, error)
	Show(ctx context.Context, ref string) (model.Secret, []string, error)
	Remove(ctx context.Context, ref string) error
}

const secretsCap = "secrets"

func (s *Server) secretAdd(c *call) (any, error) {
	if s.svc.Secrets == nil {
		return nil, missing(secretsCap)
	}
	p, err := decode[api.SecretAddParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("name", p.Name); err != nil {
		return nil, err
	}
	sec, err := s.svc.Secrets.Add(c.ctx, p)
	return api.SecretShowResult{Secret: sec, VMs: []string{}}, err
}

func (s *Server) secretList(c *call) (any, error) {
	if s.svc.Secrets == nil {
		return nil, missing(secretsCap)
	}
	if _, err := decode[api.Empty](c); err != nil {
		return nil, err
	}
	secs, err := s.svc.Secrets.List(c.ctx)
	return api.SecretListResult{Secrets: secs}, err
}

func (s *Server) secretShow(c *call) (any, error) {
	if s.svc.Secrets == nil {
		return nil, missing(secretsCap)
	}
	p, err := decode[api.SecretRefParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("name", p.Name); err != nil {
		return nil, err
	}
	sec, vms, err := s.svc.Secrets.Show(c.ctx, p.Name)
	return api.SecretShowResult{Secret: sec, VMs: vms}, err
}

func (s *Server) secretRemove(c *call) (any, error) {
	if s.svc.Secrets == nil {
		return nil, missing(secretsCap)
	}
	p, err := decode[api.SecretRefParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("name", p.Name); err != nil {
		return nil, err
	}
	return api.Empty{}, s.svc.Secrets.Remove(c.ctx, p.Name)
}
