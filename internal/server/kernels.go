package server

import (
	"context"

	"banger/internal/api"
)

// KernelService manages kernels (implemented by internal/kernel).
type KernelService interface {
	Catalog(ctx context.Context) ([]api.KernelCatalogEntry, error)
	Pull(ctx context.Context, p api.KernelPullParams, progress func(api.ProgressEvent)) (api.KernelEntry, error)
	Import(ctx context.Context, p api.KernelImportParams) (api.KernelEntry, error)
	List(ctx context.Context) ([]api.KernelEntry, error)
	Show(ctx context.Context, name string) (api.KernelEntry, error)
	Delete(ctx context.Context, name string) error
}

const kernelsCap = "kernels"

func (s *Server) kernelCatalog(c *call) (any, error) {
	if s.svc.Kernels == nil {
		return nil, missing(kernelsCap)
	}
	if _, err := decode[api.Empty](c); err != nil {
		return nil, err
	}
	entries, err := s.svc.Kernels.Catalog(c.ctx)
	return api.KernelCatalogResult{Entries: entries}, err
}

func (s *Server) kernelList(c *call) (any, error) {
	if s.svc.Kernels == nil {
		return nil, missing(kernelsCap)
	}
	if _, err := decode[api.Empty](c); err != nil {
		return nil, err
	}
	entries, err := s.svc.Kernels.List(c.ctx)
	return api.KernelListResult{Entries: entries}, err
}

func (s *Server) kernelShow(c *call) (any, error) {
	p, err := kernelRef(s, c)
	if err != nil {
		return nil, err
	}
	e, err := s.svc.Kernels.Show(c.ctx, p.Name)
	return api.KernelShowResult{Entry: e}, err
}

func (s *Server) kernelPull(c *call) (any, error) {
	if s.svc.Kernels == nil {
		return nil, missing(kernelsCap)
	}
	p, err := decode[api.KernelPullParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("name", p.Name); err != nil {
		return nil, err
	}
	e, err := s.svc.Kernels.Pull(c.ctx, p, c.progress)
	return api.KernelShowResult{Entry: e}, err
}

func (s *Server) kernelImport(c *call) (any, error) {
	if s.svc.Kernels == nil {
		return nil, missing(kernelsCap)
	}
	p, err := decode[api.KernelImportParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("name", p.Name); err != nil {
		return nil, err
	}
	if err := required("from_dir", p.FromDir); err != nil {
		return nil, err
	}
	e, err := s.svc.Kernels.Import(c.ctx, p)
	return api.KernelShowResult{Entry: e}, err
}

func (s *Server) kernelDelete(c *call) (any, error) {
	p, err := kernelRef(s, c)
	if err != nil {
		return nil, err
	}
	return api.Empty{}, s.svc.Kernels.Delete(c.ctx, p.Name)
}

func kernelRef(s *Server, c *call) (api.KernelRefParams, error) {
	if s.svc.Kernels == nil {
		return api.KernelRefParams{}, missing(kernelsCap)
	}
	p, err := decode[api.KernelRefParams](c)
	if err != nil {
		return p, err
	}
	return p, required("name", p.Name)
}
