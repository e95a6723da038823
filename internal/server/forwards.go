package server

import (
	"context"

	"banger/internal/api"
	"banger/internal/model"
)

// ForwardService forwards host loopback ports to guest ports (implemented
// by internal/forward).
type ForwardService interface {
	Add(ctx context.Context, p api.VMForwardParams) (api.VMForward, error)
	Remove(ctx context.Context, p api.VMForwardRemoveParams) error
	List(ctx context.Context, ref string) (api.VMForwardListResult, error)
	// Of is the forwards of the VM with this id, nil when none.
	Of(vmID string) []api.VMForward
}

const forwardsCap = "port forwarding"

// withForwards fills vm.Forwards (never stored) for vm list and vm show.
func (s *Server) withForwards(vm *model.VMRecord) {
	if s.svc.Forwards != nil {
		vm.Forwards = s.svc.Forwards.Of(vm.ID)
	}
}

func (s *Server) vmForwardAdd(c *call) (any, error) {
	if s.svc.Forwards == nil {
		return nil, missing(forwardsCap)
	}
	p, err := decode[api.VMForwardParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id_or_name", p.IDOrName); err != nil {
		return nil, err
	}
	f, err := s.svc.Forwards.Add(c.ctx, p)
	return api.VMForwardResult{Forward: f}, err
}

func (s *Server) vmForwardRemove(c *call) (any, error) {
	if s.svc.Forwards == nil {
		return nil, missing(forwardsCap)
	}
	p, err := decode[api.VMForwardRemoveParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id_or_name", p.IDOrName); err != nil {
		return nil, err
	}
	return api.Empty{}, s.svc.Forwards.Remove(c.ctx, p)
}

func (s *Server) vmForwardList(c *call) (any, error) {
	if s.svc.Forwards == nil {
		return nil, missing(forwardsCap)
	}
	ref, err := vmRef(s, c)
	if err != nil {
		return nil, err
	}
	return s.svc.Forwards.List(c.ctx, ref)
}
