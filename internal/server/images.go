package server

import (
	"context"

	"banger/internal/api"
	"banger/internal/model"
)

// ImageService manages images (implemented by internal/image). The caller's
// identity travels in the context (authz.CallerFrom).
type ImageService interface {
	Pull(ctx context.Context, p api.ImagePullParams, progress func(api.ProgressEvent)) (model.Image, error)
	Import(ctx context.Context, p api.ImageImportParams, progress func(api.ProgressEvent)) (model.Image, error)
	Build(ctx context.Context, p api.ImageBuildParams, progress func(api.ProgressEvent)) (model.Image, error)
	Register(ctx context.Context, p api.ImageRegisterParams) (model.Image, error)
	List(ctx context.Context) ([]model.Image, error)
	Show(ctx context.Context, idOrName string) (model.Image, error)
	Delete(ctx context.Context, idOrName string) error
}

const imagesCap = "images"

func (s *Server) imageList(c *call) (any, error) {
	if s.svc.Images == nil {
		return nil, missing(imagesCap)
	}
	if _, err := decode[api.Empty](c); err != nil {
		return nil, err
	}
	imgs, err := s.svc.Images.List(c.ctx)
	return api.ImageListResult{Images: imgs}, err
}

func (s *Server) imageShow(c *call) (any, error) {
	p, err := imageRef(s, c)
	if err != nil {
		return nil, err
	}
	img, err := s.svc.Images.Show(c.ctx, p.IDOrName)
	return api.ImageShowResult{Image: img}, err
}

func (s *Server) imageDelete(c *call) (any, error) {
	p, err := imageRef(s, c)
	if err != nil {
		return nil, err
	}
	return api.Empty{}, s.svc.Images.Delete(c.ctx, p.IDOrName)
}

func (s *Server) imagePull(c *call) (any, error) {
	if s.svc.Images == nil {
		return nil, missing(imagesCap)
	}
	p, err := decode[api.ImagePullParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("ref", p.Ref); err != nil {
		return nil, err
	}
	img, err := s.svc.Images.Pull(c.ctx, p, c.progress)
	return api.ImageShowResult{Image: img}, err
}

func (s *Server) imageImport(c *call) (any, error) {
	if s.svc.Images == nil {
		return nil, missing(imagesCap)
	}
	p, err := decode[api.ImageImportParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("path", p.Path); err != nil {
		return nil, err
	}
	img, err := s.svc.Images.Import(c.ctx, p, c.progress)
	return api.ImageShowResult{Image: img}, err
}

func (s *Server) imageBuild(c *call) (any, error) {
	if s.svc.Images == nil {
		return nil, missing(imagesCap)
	}
	p, err := decode[api.ImageBuildParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("distro", p.Distro); err != nil {
		return nil, err
	}
	img, err := s.svc.Images.Build(c.ctx, p, c.progress)
	return api.ImageShowResult{Image: img}, err
}

func (s *Server) imageRegister(c *call) (any, error) {
	if s.svc.Images == nil {
		return nil, missing(imagesCap)
	}
	p, err := decode[api.ImageRegisterParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("rootfs_path", p.RootfsPath); err != nil {
		return nil, err
	}
	img, err := s.svc.Images.Register(c.ctx, p)
	return api.ImageShowResult{Image: img}, err
}

func imageRef(s *Server, c *call) (api.ImageRefParams, error) {
	if s.svc.Images == nil {
		return api.ImageRefParams{}, missing(imagesCap)
	}
	p, err := decode[api.ImageRefParams](c)
	if err != nil {
		return p, err
	}
	return p, required("id_or_name", p.IDOrName)
}
