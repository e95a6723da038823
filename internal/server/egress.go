package server

import (
	"context"

	"banger/internal/api"
)

// EgressService reports VMs' outbound policies.
type EgressService interface {
	Egress(ctx context.Context, ref string) (api.VMEgressResult, error)
}

const egressCap = "egress policies"

func (s *Server) vmEgress(c *call) (any, error) {
	if s.svc.Egress == nil {
		return nil, missing(egressCap)
	}
	p, err := decode[api.VMRefParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id_or_name", p.IDOrName); err != nil {
		return nil, err
	}
	return s.svc.Egress.Egress(c.ctx, p.IDOrName)
}
