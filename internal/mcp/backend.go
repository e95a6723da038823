// Package mcp is banger's Model Context Protocol server: the tools a coding
// agent uses to create VMs, run commands and edit files in them, and move a
// workspace in and a patch out. It is built on the official Go SDK and talks
// to the daemon through the typed client as the calling user, so every rule
// the daemon enforces for that user applies.
package mcp

import (
	"context"
	"io"
	"io/fs"

	"banger/internal/api"
	"banger/internal/model"
)

// Daemon is the part of the daemon's API the tools use (client.Client
// implements it).
type Daemon interface {
	VMCreate(ctx context.Context, p api.VMCreateParams) (api.VMCreateOperation, error)
	VMCreateStatus(ctx context.Context, id string) (api.VMCreateOperation, error)
	VMList(ctx context.Context) ([]model.VMRecord, error)
	VMShow(ctx context.Context, ref string) (model.VMRecord, error)
	VMStart(ctx context.Context, ref string) (model.VMRecord, error)
	VMStop(ctx context.Context, ref string) (model.VMRecord, error)
	VMDelete(ctx context.Context, p api.VMDeleteParams) error
	VMLogs(ctx context.Context, ref string) (string, error)
	VMPorts(ctx context.Context, ref string) (api.VMPortsResult, error)
	WorkspacePrepare(ctx context.Context, p api.VMWorkspacePrepareParams) (model.WorkspacePrepareResult, error)
	WorkspaceExport(ctx context.Context, p api.WorkspaceExportParams) (api.WorkspaceExportResult, error)
	SecretList(ctx context.Context) ([]model.Secret, error)
	SecretShow(ctx context.Context, name string) (api.SecretShowResult, error)
}

// Guests opens a connection to a VM's guest as root.
type Guests interface {
	Open(ctx context.Context, vm string) (Guest, error)
	// Forget drops any cached connection to vm (after stop or delete).
	Forget(vm string)
}

// Guest is one VM's guest: commands and files. Paths are guest paths.
type Guest interface {
	// Run runs a shell command line and returns its exit status.
	Run(ctx context.Context, cmd string, stdout, stderr io.Writer) (int, error)
	Stat(path string) (fs.FileInfo, error)
	ReadDir(path string) ([]fs.FileInfo, error)
	// ReadFile reads at most max bytes from offset off; it also returns the
	// file's size.
	ReadFile(path string, off, max int64) (data []byte, size int64, err error)
	// WriteFile replaces path's content atomically, with mode for a new file
	// (an existing file keeps its mode); mkdirs creates missing parents.
	WriteFile(path string, data []byte, mode fs.FileMode, mkdirs bool) error
}
