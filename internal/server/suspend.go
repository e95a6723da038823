package server

import (
	"context"

	"banger/internal/model"
)

// SuspendService is the optional part of a VMService that suspends and
// resumes VMs (vm.Manager implements it).
type SuspendService interface {
	Suspend(ctx context.Context, ref string) (model.VMRecord, error)
	Resume(ctx context.Context, ref string) (model.VMRecord, error)
}

const suspendCap = "vm suspend and resume"

func (s *Server) suspender() (SuspendService, error) {
	if s.svc.Suspends != nil {
		return s.svc.Suspends, nil
	}
	return nil, missing(suspendCap)
}

func (s *Server) vmSuspend(c *call) (any, error) {
	sv, err := s.suspender()
	if err != nil {
		return nil, err
	}
	return s.vmRecordRoute(c, sv.Suspend)
}

func (s *Server) vmResume(c *call) (any, error) {
	sv, err := s.suspender()
	if err != nil {
		return nil, err
	}
	return s.vmRecordRoute(c, sv.Resume)
}
