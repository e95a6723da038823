package daemon

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/units"
	"banger/internal/workspace"
)

// imageService gives the image service the caller from the request context.
type imageService struct{ s *image.Service }

func imageCaller(ctx context.Context) image.Caller {
	c := authz.CallerFrom(ctx)
	home, _ := authz.HomeDir(c)
	return image.Caller{UID: c.UID, GID: c.GID, Home: home}
}

func (i imageService) Pull(ctx context.Context, p api.ImagePullParams, progress func(api.ProgressEvent)) (model.Image, error) {
	return i.s.Pull(ctx, p, imageCaller(ctx), progress)
}

func (i imageService) Import(ctx context.Context, p api.ImageImportParams, progress func(api.ProgressEvent)) (model.Image, error) {
	return i.s.Import(ctx, p.Path, p.Name, imageCaller(ctx), progress)
}

func (i imageService) Build(ctx context.Context, p api.ImageBuildParams, progress func(api.ProgressEvent)) (model.Image, error) {
	bp := image.BuildParams{Distro: p.Distro, Suite: p.Suite, Include: p.Include, Minimal: p.Minimal, Name: p.Name}
	if p.Size != "" {
		n, err := units.ParseSize(p.Size)
		if err != nil {
			return model.Image{}, api.Errorf(api.ErrInvalid, "size: %v", err)
		}
		bp.SizeBytes = n
	}
	return i.s.Build(ctx, bp, imageCaller(ctx), progress)
}

func (i imageService) Register(ctx context.Context, p api.ImageRegisterParams) (model.Image, error) {
	return i.s.Register(ctx, p, imageCaller(ctx))
}

func (i imageService) List(ctx context.Context) ([]model.Image, error) { return i.s.List(ctx) }

func (i imageService) Show(ctx context.Context, ref string) (model.Image, error) {
	return i.s.Show(ctx, ref)
}

func (i imageService) Delete(ctx context.Context, ref string) error { return i.s.Delete(ctx, ref) }

// workspaceService runs workspace prepare/export against a running VM's agent.
type workspaceService struct {
	guests *guest.Service
	log    *slog.Logger
}

func (w workspaceService) Prepare(ctx context.Context, p api.VMWorkspacePrepareParams) (model.WorkspacePrepareResult, error) {
	if err := authz.CheckRead(ctx, p.SourcePath); err != nil {
		return model.WorkspacePrepareResult{}, err
	}
	c, rec, err := w.guests.Dial(ctx, p.IDOrName)
	if err != nil {
		return model.WorkspacePrepareResult{}, err
	}
	defer c.Close()
	caller := authz.CallerFrom(ctx)
	return workspace.New(w.log).Prepare(ctx, c, filepath.Join(rec.Dir, paths.VMWorkspace),
		workspace.Caller{UID: caller.UID, GID: caller.GID}, p, rec.Name)
}

func (w workspaceService) Export(ctx context.Context, p api.WorkspaceExportParams, out io.Writer) (api.WorkspaceExportResult, error) {
	c, rec, err := w.guests.Dial(ctx, p.IDOrName)
	if err != nil {
		return api.WorkspaceExportResult{}, err
	}
	defer c.Close()
	caller := authz.CallerFrom(ctx)
	return workspace.New(w.log).Export(ctx, c, filepath.Join(rec.Dir, paths.VMWorkspace),
		workspace.Caller{UID: caller.UID, GID: caller.GID}, p, out)
}
