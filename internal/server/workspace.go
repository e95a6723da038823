package server

import (
	"bytes"
	"context"
	"errors"
	"io"

	"banger/internal/api"
	"banger/internal/model"
)

// WorkspaceService moves git workspaces in and out of VMs.
type WorkspaceService interface {
	Prepare(ctx context.Context, p api.VMWorkspacePrepareParams) (model.WorkspacePrepareResult, error)
	// Export writes the patch to w as it is made and returns the rest.
	Export(ctx context.Context, p api.WorkspaceExportParams, w io.Writer) (api.WorkspaceExportResult, error)
}

// maxInlinePatch bounds the patch of an export answered in one JSON body
// (the whole reply is in memory); larger ones need the streamed form.
const maxInlinePatch = 32 << 20

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
	if c.data != nil {
		return s.svc.Workspaces.Export(c.ctx, p, c.data)
	}
	buf := &boundedBuffer{limit: maxInlinePatch}
	res, err := s.svc.Workspaces.Export(c.ctx, p, buf)
	if buf.over {
		return nil, api.Errorf(api.ErrInvalid, "patch is over %d bytes: ask for the streamed form (Accept: application/x-ndjson), as the CLI does", maxInlinePatch)
	}
	res.Patch = buf.b.Bytes()
	return res, err
}

// chunkSize is the largest piece of a streamed body in one line.
const chunkSize = 256 << 10

// chunkWriter collects writes into pieces of up to chunkSize and sends each.
type chunkWriter struct {
	buf  []byte
	send func([]byte)
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, chunkSize)
		}
		k := min(len(p), chunkSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == chunkSize {
			w.flush()
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() {
	if len(w.buf) > 0 {
		w.send(w.buf)
		w.buf = w.buf[:0]
	}
}

// boundedBuffer keeps up to limit bytes and fails after that.
type boundedBuffer struct {
	b     bytes.Buffer
	limit int
	over  bool
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.limit {
		w.over = true
		return 0, errors.New("patch over the inline limit")
	}
	return w.b.Write(p)
}
