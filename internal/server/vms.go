package server

import (
	"context"

	"banger/internal/api"
	"banger/internal/model"
)

// VMService runs VMs (implemented by internal/vm).
type VMService interface {
	Create(ctx context.Context, p api.VMCreateParams) (api.VMCreateOperation, error)
	CreateStatus(ctx context.Context, id string) (api.VMCreateOperation, error)
	// WaitCreateStatus is CreateStatus answered once the operation has
	// left stage or ended, or after a few seconds.
	WaitCreateStatus(ctx context.Context, id, stage string) (api.VMCreateOperation, error)
	List(ctx context.Context) ([]model.VMRecord, error)
	Show(ctx context.Context, ref string) (model.VMRecord, error)
	Start(ctx context.Context, ref string) (model.VMRecord, error)
	Stop(ctx context.Context, ref string) (model.VMRecord, error)
	Restart(ctx context.Context, ref string) (model.VMRecord, error)
	Kill(ctx context.Context, p api.VMKillParams) (model.VMRecord, error)
	Set(ctx context.Context, p api.VMSetParams) (model.VMRecord, error)
	Delete(ctx context.Context, p api.VMDeleteParams) error
	Stats(ctx context.Context, ref string) (model.VMRecord, model.VMStats, error)
	Logs(ctx context.Context, ref string) (string, error)
}

const vmsCap = "virtual machines"

func (s *Server) vmCreate(c *call) (any, error) {
	if s.svc.VMs == nil {
		return nil, missing(vmsCap)
	}
	p, err := decode[api.VMCreateParams](c)
	if err != nil {
		return nil, err
	}
	op, err := s.svc.VMs.Create(c.ctx, p)
	return api.VMCreateBeginResult{Operation: op}, err
}

func (s *Server) vmCreateStatus(c *call) (any, error) {
	if s.svc.VMs == nil {
		return nil, missing(vmsCap)
	}
	p, err := decode[api.VMCreateStatusParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id", p.ID); err != nil {
		return nil, err
	}
	var op api.VMCreateOperation
	if p.WaitStage != "" {
		op, err = s.svc.VMs.WaitCreateStatus(c.ctx, p.ID, p.WaitStage)
	} else {
		op, err = s.svc.VMs.CreateStatus(c.ctx, p.ID)
	}
	return api.VMCreateStatusResult{Operation: op}, err
}

func (s *Server) vmList(c *call) (any, error) {
	if s.svc.VMs == nil {
		return nil, missing(vmsCap)
	}
	if _, err := decode[api.Empty](c); err != nil {
		return nil, err
	}
	vms, err := s.svc.VMs.List(c.ctx)
	for i := range vms {
		s.withForwards(&vms[i])
	}
	return api.VMListResult{VMs: vms}, err
}

// vmRecordRoute is the shape shared by routes that take a VMRefParams and
// answer with the VM record.
func (s *Server) vmRecordRoute(c *call, fn func(context.Context, string) (model.VMRecord, error)) (any, error) {
	ref, err := vmRef(s, c)
	if err != nil {
		return nil, err
	}
	vm, err := fn(c.ctx, ref)
	return api.VMShowResult{VM: vm}, err
}

func (s *Server) vmShow(c *call) (any, error) {
	return s.vmRecordRoute(c, func(ctx context.Context, r string) (model.VMRecord, error) {
		vm, err := s.svc.VMs.Show(ctx, r)
		if err == nil {
			s.withForwards(&vm)
		}
		return vm, err
	})
}

func (s *Server) vmStart(c *call) (any, error) {
	return s.vmRecordRoute(c, func(ctx context.Context, r string) (model.VMRecord, error) { return s.svc.VMs.Start(ctx, r) })
}

func (s *Server) vmStop(c *call) (any, error) {
	return s.vmRecordRoute(c, func(ctx context.Context, r string) (model.VMRecord, error) { return s.svc.VMs.Stop(ctx, r) })
}

func (s *Server) vmRestart(c *call) (any, error) {
	return s.vmRecordRoute(c, func(ctx context.Context, r string) (model.VMRecord, error) { return s.svc.VMs.Restart(ctx, r) })
}

func (s *Server) vmKill(c *call) (any, error) {
	if s.svc.VMs == nil {
		return nil, missing(vmsCap)
	}
	p, err := decode[api.VMKillParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id_or_name", p.IDOrName); err != nil {
		return nil, err
	}
	vm, err := s.svc.VMs.Kill(c.ctx, p)
	return api.VMShowResult{VM: vm}, err
}

func (s *Server) vmSet(c *call) (any, error) {
	if s.svc.VMs == nil {
		return nil, missing(vmsCap)
	}
	p, err := decode[api.VMSetParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id_or_name", p.IDOrName); err != nil {
		return nil, err
	}
	vm, err := s.svc.VMs.Set(c.ctx, p)
	return api.VMShowResult{VM: vm}, err
}

func (s *Server) vmDelete(c *call) (any, error) {
	if s.svc.VMs == nil {
		return nil, missing(vmsCap)
	}
	p, err := decode[api.VMDeleteParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id_or_name", p.IDOrName); err != nil {
		return nil, err
	}
	return api.Empty{}, s.svc.VMs.Delete(c.ctx, p)
}

func (s *Server) vmStats(c *call) (any, error) {
	ref, err := vmRef(s, c)
	if err != nil {
		return nil, err
	}
	vm, st, err := s.svc.VMs.Stats(c.ctx, ref)
	return api.VMStatsResult{VM: vm, Stats: st}, err
}

func (s *Server) vmLogs(c *call) (any, error) {
	ref, err := vmRef(s, c)
	if err != nil {
		return nil, err
	}
	path, err := s.svc.VMs.Logs(c.ctx, ref)
	return api.VMLogsResult{LogPath: path}, err
}

func vmRef(s *Server, c *call) (string, error) {
	if s.svc.VMs == nil {
		return "", missing(vmsCap)
	}
	p, err := decode[api.VMRefParams](c)
	if err != nil {
		return "", err
	}
	return p.IDOrName, required("id_or_name", p.IDOrName)
}
