package image

import (
	"context"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/model"
	"banger/internal/units"
)

// API is the image service as the server calls it. Like every service, it
// takes the caller from the request context (authz.CallerFrom; the daemon
// puts it there for each connection, and the server's door has decided
// the request); host paths are opened as the caller through the Service's
// Authorizer.
type API struct{ *Service }

// callerOf is the request's caller with their home folder (where their
// registry credentials are).
func callerOf(ctx context.Context) Caller {
	c := authz.CallerFrom(ctx)
	home, _ := authz.HomeDir(c)
	return Caller{UID: c.UID, GID: c.GID, Home: home}
}

// Pull pulls an OCI image for the request's caller.
func (a API) Pull(ctx context.Context, p api.ImagePullParams, progress func(api.ProgressEvent)) (model.Image, error) {
	return a.Service.Pull(ctx, p, callerOf(ctx), progress)
}

// Import imports an OCI archive or layout the caller can read.
func (a API) Import(ctx context.Context, p api.ImageImportParams, progress func(api.ProgressEvent)) (model.Image, error) {
	return a.Service.Import(ctx, p.Path, p.Name, callerOf(ctx), progress)
}

// Build builds a Debian-family image with debootstrap.
func (a API) Build(ctx context.Context, p api.ImageBuildParams, progress func(api.ProgressEvent)) (model.Image, error) {
	bp := BuildParams{Distro: p.Distro, Suite: p.Suite, Include: p.Include, Minimal: p.Minimal, Name: p.Name}
	if p.Size != "" {
		n, err := units.ParseSize(p.Size)
		if err != nil {
			return model.Image{}, api.Errorf(api.ErrInvalid, "size: %v", err)
		}
		bp.SizeBytes = n
	}
	return a.Service.Build(ctx, bp, callerOf(ctx), progress)
}

// Register records a root filesystem (and work disk seed) the caller can read.
func (a API) Register(ctx context.Context, p api.ImageRegisterParams) (model.Image, error) {
	return a.Service.Register(ctx, p, callerOf(ctx))
}
