package server

import (
	"context"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/model"
)

// SnapshotService is the optional part of a VMService that snapshots and
// forks VMs (vm.Manager implements it).
type SnapshotService interface {
	Snapshot(ctx context.Context, p api.VMSnapshotParams) (model.Snapshot, error)
	Fork(ctx context.Context, p api.VMForkParams) (api.VMForkResult, error)
	ListSnapshots(ctx context.Context) ([]model.Snapshot, error)
	ShowSnapshot(ctx context.Context, ref string) (model.Snapshot, error)
	DeleteSnapshot(ctx context.Context, ref string) error
}

const snapshotsCap = "vm snapshots and fork"

func (s *Server) snapshots() (SnapshotService, error) {
	if s.svc.Snapshots != nil {
		return s.svc.Snapshots, nil
	}
	return nil, missing(snapshotsCap)
}

func (s *Server) vmSnapshot(c *call) (any, error) {
	sv, err := s.snapshots()
	if err != nil {
		return nil, err
	}
	p, err := decode[api.VMSnapshotParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id_or_name", p.IDOrName); err != nil {
		return nil, err
	}
	sn, err := sv.Snapshot(c.ctx, p)
	return api.SnapshotShowResult{Snapshot: sn}, err
}

func (s *Server) vmFork(c *call) (any, error) {
	sv, err := s.snapshots()
	if err != nil {
		return nil, err
	}
	p, err := decode[api.VMForkParams](c)
	if err != nil {
		return nil, err
	}
	return sv.Fork(c.ctx, p)
}

func (s *Server) snapshotList(c *call) (any, error) {
	sv, err := s.snapshots()
	if err != nil {
		return nil, err
	}
	if _, err := decode[api.Empty](c); err != nil {
		return nil, err
	}
	sns, err := sv.ListSnapshots(c.ctx)
	return api.SnapshotListResult{Snapshots: sns}, err
}

func snapshotRef(c *call) (string, error) {
	p, err := decode[api.SnapshotRefParams](c)
	if err != nil {
		return "", err
	}
	return p.IDOrName, required("id_or_name", p.IDOrName)
}

func (s *Server) snapshotShow(c *call) (any, error) {
	sv, err := s.snapshots()
	if err != nil {
		return nil, err
	}
	ref, err := snapshotRef(c)
	if err != nil {
		return nil, err
	}
	sn, err := sv.ShowSnapshot(c.ctx, ref)
	return api.SnapshotShowResult{Snapshot: sn}, err
}

func (s *Server) snapshotDelete(c *call) (any, error) {
	sv, err := s.snapshots()
	if err != nil {
		return nil, err
	}
	ref, err := snapshotRef(c)
	if err != nil {
		return nil, err
	}
	return nil, sv.DeleteSnapshot(c.ctx, ref)
}

// vmFork (door): the VM, or the snapshot, must be the caller's to use.
func vmFork(s *Server, ctx context.Context, c authz.Caller, t target) error {
	if err := existing(authz.VM, authz.Use, byIDOrName)(s, ctx, c, t); err != nil {
		return err
	}
	return existing(authz.Snapshot, authz.Use, func(t target) string { return t.FromSnapshot })(s, ctx, c, t)
}
