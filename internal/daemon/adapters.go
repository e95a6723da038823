package daemon

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/workspace"
)

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
