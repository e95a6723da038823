package server

import (
	"context"

	"banger/internal/api"
	"banger/internal/model"
)

// WorkspaceService moves git workspaces in and out of VMs.
type WorkspaceService interface {
	Prepare(ctx context.Context, p api.VMWorkspacePrepareParams) (model.WorkspacePrepareResult, error)
	Export(ctx context.Context, p api.WorkspaceExportParams) (api.WorkspaceExportResult, error)
}

const workspacesCap = "workspaces"

func (s *Server) workspacePrepare(c *call) (any, error) {
	if s.svc.Workspaces == nil {
		return nil, missing(workspacesCap)
	}
	p, err := decode[api.VMWorkspacePrepareParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id_or_name", p.IDOrName); err != nil {
		return nil, err
	}
	if err := required("source_path", p.SourcePath); err != nil {
		return nil, err
	}
	ws, err := s.svc.Workspaces.Prepare(c.ctx, p)
	return api.VMWorkspacePrepareResult{Workspace: ws}, err
}

func (s *Server) workspaceExport(c *call) (any, error) {
	if s.svc.Workspaces == nil {
		return nil, missing(workspacesCap)
	}
	p, err := decode[api.WorkspaceExportParams](c)
	if err != nil {
		return nil, err
	}
	if err := required("id_or_name", p.IDOrName); err != nil {
		return nil, err
	}
	return s.svc.Workspaces.Export(c.ctx, p)
}
