package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/api"
	"banger/internal/model"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// maxPatchBytes bounds a patch returned over MCP.
const maxPatchBytes = 8 << 20

// serialTail is how much of the end of a serial log the resource returns.
const serialTail = 256 << 10

// WorkspacePrepareInput are workspace_prepare's arguments.
type WorkspacePrepareInput struct {
	VM               string `json:"vm" jsonschema:"the VM's name or id"`
	Source           string `json:"source" jsonschema:"host git repository to copy in (the host repository is never modified)"`
	GuestPath        string `json:"guest_path,omitempty" jsonschema:"where in the guest (default /root/<repo-name>); its content is replaced"`
	Branch           string `json:"branch,omitempty" jsonschema:"branch to check out in the guest"`
	From             string `json:"from,omitempty" jsonschema:"base commit (default HEAD)"`
	Mode             string `json:"mode,omitempty" jsonschema:"worktree (base plus uncommitted changes, the default) or commit (exactly the base)"`
	IncludeUntracked bool   `json:"include_untracked,omitempty" jsonschema:"also copy untracked, not ignored files"`
}

// WorkspacePrepareResult is the prepared workspace.
type WorkspacePrepareResult struct {
	Workspace model.WorkspacePrepareResult `json:"workspace"`
}

// WorkspaceExportInput are workspace_export's arguments.
type WorkspaceExportInput struct {
	VM         string `json:"vm" jsonschema:"the VM's name or id"`
	GuestPath  string `json:"guest_path,omitempty" jsonschema:"workspace path in the guest (default: the prepared one)"`
	BaseCommit string `json:"base_commit,omitempty" jsonschema:"diff against this commit instead of the prepare-time state"`
}

// WorkspaceExportResult is the guest's changes as a git patch.
type WorkspaceExportResult struct {
	GuestPath    string   `json:"guest_path"`
	BaseCommit   string   `json:"base_commit"`
	HasChanges   bool     `json:"has_changes"`
	ChangedFiles []string `json:"changed_files"`
	Patch        string   `json:"patch" jsonschema:"git diff --binary output; review it and apply it on the host yourself (git apply)"`
}

func (s *server) addWorkspaceTools(ms *mcp.Server) {
	addTool(ms, "workspace_prepare", "Prepare workspace", "Copy a host git repository into a VM (replacing the guest folder). The daemon checks you can read the source.", destructive, s.workspacePrepare)
	addTool(ms, "workspace_export", "Export workspace", "Return the guest workspace's changes as a git patch. Applying it to the host is not offered here: review it and use git apply (or 'banger vm workspace export --apply').", readOnly, s.workspaceExport)
}

func (s *server) workspacePrepare(ctx context.Context, _ *mcp.CallToolRequest, in WorkspacePrepareInput) (WorkspacePrepareResult, error) {
	if in.Source == "" {
		return WorkspacePrepareResult{}, errors.New("source is empty")
	}
	if in.Mode != "" && in.Mode != "worktree" && in.Mode != "commit" {
		return WorkspacePrepareResult{}, errors.New("mode must be worktree or commit")
	}
	src := in.Source
	if !filepath.IsAbs(src) {
		cwd := s.Cwd
		if cwd == "" {
			wd, err := os.Getwd()
			if err != nil {
				return WorkspacePrepareResult{}, fmt.Errorf("resolve %s: %w", src, err)
			}
			cwd = wd
		}
		src = filepath.Join(cwd, src)
	}
	ws, err := s.Daemon.WorkspacePrepare(ctx, api.VMWorkspacePrepareParams{IDOrName: in.VM, SourcePath: filepath.Clean(src),
		GuestPath: in.GuestPath, Branch: in.Branch, From: in.From, Mode: in.Mode, IncludeUntracked: in.IncludeUntracked})
	return WorkspacePrepareResult{ws}, err
}

func (s *server) workspaceExport(ctx context.Context, _ *mcp.CallToolRequest, in WorkspaceExportInput) (WorkspaceExportResult, error) {
	res, err := s.Daemon.WorkspaceExport(ctx, api.WorkspaceExportParams{IDOrName: in.VM, GuestPath: in.GuestPath, BaseCommit: in.BaseCommit})
	if err != nil {
		return WorkspaceExportResult{}, err
	}
	if len(res.Patch) > maxPatchBytes {
		return WorkspaceExportResult{}, fmt.Errorf("the patch is %d MiB, more than MCP returns (%d MiB); export it with 'banger vm workspace export %s -o FILE'",
			len(res.Patch)>>20, maxPatchBytes>>20, in.VM)
	}
	files := res.ChangedFiles
	if files == nil {
		files = []string{}
	}
	return WorkspaceExportResult{GuestPath: res.GuestPath, BaseCommit: res.BaseCommit, HasChanges: res.HasChanges,
		ChangedFiles: files, Patch: string(res.Patch)}, nil
}

// addResources adds the serial log of every VM as banger://vm/NAME/serial.
func (s *server) addResources(ms *mcp.Server) {
	ms.AddResourceTemplate(&mcp.ResourceTemplate{Name: "serial", Title: "VM serial console log",
		Description: "The end of a VM's serial console log (boot messages, kernel and init output).",
		MIMEType:    "text/plain", URITemplate: "banger://vm/{name}/serial"}, s.readSerial)
}

func (s *server) readSerial(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "banger" || u.Host != "vm" {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	name, ok := strings.CutSuffix(strings.TrimPrefix(u.Path, "/"), "/serial")
	if !ok || name == "" || strings.Contains(name, "/") {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	logPath, err := s.Daemon.VMLogs(ctx, name)
	if err != nil {
		return nil, errors.New(oneLine(err))
	}
	text, err := readTail(logPath, serialTail)
	if err != nil {
		return nil, fmt.Errorf("read serial log of %s: %w", name, err)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "text/plain", Text: text}}}, nil
}

// readTail returns the last n bytes of a file.
func readTail(p string, n int64) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Size() > n {
		if _, err := f.Seek(st.Size()-n, io.SeekStart); err != nil {
			return "", err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, n))
	return strings.ToValidUTF8(string(data), "\uFFFD"), err
}
