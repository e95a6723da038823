package client

import (
	"context"
	"io"

	"banger/internal/api"
	"banger/internal/model"
)

// VMCreate starts creating a VM and returns the operation at once.
func (c *Client) VMCreate(ctx context.Context, p api.VMCreateParams) (api.VMCreateOperation, error) {
	var res api.VMCreateBeginResult
	err := c.call(ctx, "/v1/vm/create", p, &res, nil)
	return res.Operation, err
}

// VMCreateStatus reads a create operation.
func (c *Client) VMCreateStatus(ctx context.Context, id string) (api.VMCreateOperation, error) {
	var res api.VMCreateStatusResult
	err := c.call(ctx, "/v1/vm/create-status", api.VMCreateStatusParams{ID: id}, &res, nil)
	return res.Operation, err
}

// VMCreateStatusWait reads a create operation once it has left stage or
// ended (the daemon answers after a few seconds at most).
func (c *Client) VMCreateStatusWait(ctx context.Context, id, stage string) (api.VMCreateOperation, error) {
	var res api.VMCreateStatusResult
	err := c.call(ctx, "/v1/vm/create-status", api.VMCreateStatusParams{ID: id, WaitStage: stage}, &res, nil)
	return res.Operation, err
}

// VMList lists VMs.
func (c *Client) VMList(ctx context.Context) ([]model.VMRecord, error) {
	var res api.VMListResult
	err := c.call(ctx, "/v1/vm/list", nil, &res, nil)
	return res.VMs, err
}

func (c *Client) vmRecord(ctx context.Context, path, ref string) (model.VMRecord, error) {
	var res api.VMShowResult
	err := c.call(ctx, path, api.VMRefParams{IDOrName: ref}, &res, nil)
	return res.VM, err
}

// VMShow returns one VM.
func (c *Client) VMShow(ctx context.Context, ref string) (model.VMRecord, error) {
	return c.vmRecord(ctx, "/v1/vm/show", ref)
}

// VMStart boots a stopped VM and waits until it is ready.
func (c *Client) VMStart(ctx context.Context, ref string) (model.VMRecord, error) {
	return c.vmRecord(ctx, "/v1/vm/start", ref)
}

// VMStop powers a VM off (bounded wait, then kill).
func (c *Client) VMStop(ctx context.Context, ref string) (model.VMRecord, error) {
	return c.vmRecord(ctx, "/v1/vm/stop", ref)
}

// VMRestart stops and starts a VM.
func (c *Client) VMRestart(ctx context.Context, ref string) (model.VMRecord, error) {
	return c.vmRecord(ctx, "/v1/vm/restart", ref)
}

// VMKill signals a VM's VMM.
func (c *Client) VMKill(ctx context.Context, p api.VMKillParams) (model.VMRecord, error) {
	var res api.VMShowResult
	err := c.call(ctx, "/v1/vm/kill", p, &res, nil)
	return res.VM, err
}

// VMSet changes a VM's settings.
func (c *Client) VMSet(ctx context.Context, p api.VMSetParams) (model.VMRecord, error) {
	var res api.VMShowResult
	err := c.call(ctx, "/v1/vm/set", p, &res, nil)
	return res.VM, err
}

// VMDelete deletes a VM and everything it owns.
func (c *Client) VMDelete(ctx context.Context, p api.VMDeleteParams) error {
	return c.call(ctx, "/v1/vm/delete", p, nil, nil)
}

// VMStats returns resource use.
func (c *Client) VMStats(ctx context.Context, ref string) (api.VMStatsResult, error) {
	var res api.VMStatsResult
	err := c.call(ctx, "/v1/vm/stats", api.VMRefParams{IDOrName: ref}, &res, nil)
	return res, err
}

// VMLogs returns the serial console log path.
func (c *Client) VMLogs(ctx context.Context, ref string) (string, error) {
	var res api.VMLogsResult
	err := c.call(ctx, "/v1/vm/logs", api.VMRefParams{IDOrName: ref}, &res, nil)
	return res.LogPath, err
}

// VMSSH returns where to reach a VM over SSH.
func (c *Client) VMSSH(ctx context.Context, ref string) (api.VMSSHResult, error) {
	var res api.VMSSHResult
	err := c.call(ctx, "/v1/vm/ssh", api.VMRefParams{IDOrName: ref}, &res, nil)
	return res, err
}

// VMAuthorizeKey lets a public key log in as root and returns the connection details.
func (c *Client) VMAuthorizeKey(ctx context.Context, p api.VMAuthorizeKeyParams) (api.VMAuthorizeKeyResult, error) {
	var res api.VMAuthorizeKeyResult
	err := c.call(ctx, "/v1/vm/authorize-key", p, &res, nil)
	return res, err
}

// VMHealth runs the guest's health checks.
func (c *Client) VMHealth(ctx context.Context, ref string) (api.VMHealthResult, error) {
	var res api.VMHealthResult
	err := c.call(ctx, "/v1/vm/health", api.VMRefParams{IDOrName: ref}, &res, nil)
	return res, err
}

// VMPing checks the VM answers over its network.
func (c *Client) VMPing(ctx context.Context, ref string) (api.VMPingResult, error) {
	var res api.VMPingResult
	err := c.call(ctx, "/v1/vm/ping", api.VMRefParams{IDOrName: ref}, &res, nil)
	return res, err
}

// VMPorts lists the guest's listening sockets.
func (c *Client) VMPorts(ctx context.Context, ref string) (api.VMPortsResult, error) {
	var res api.VMPortsResult
	err := c.call(ctx, "/v1/vm/ports", api.VMRefParams{IDOrName: ref}, &res, nil)
	return res, err
}

// WorkspacePrepare copies a host git repository into a VM.
func (c *Client) WorkspacePrepare(ctx context.Context, p api.VMWorkspacePrepareParams) (model.WorkspacePrepareResult, error) {
	var res api.VMWorkspacePrepareResult
	err := c.call(ctx, "/v1/vm/workspace/prepare", p, &res, nil)
	return res.Workspace, err
}

// WorkspaceExport returns the guest's workspace changes as a patch, in
// memory; the daemon refuses this form for large patches (use
// WorkspaceExportTo).
func (c *Client) WorkspaceExport(ctx context.Context, p api.WorkspaceExportParams) (api.WorkspaceExportResult, error) {
	var res api.WorkspaceExportResult
	err := c.call(ctx, "/v1/vm/workspace/export", p, &res, nil)
	return res, err
}

// WorkspaceExportTo streams the guest's workspace changes as a patch to w
// (the daemon never holds the whole patch) and returns the rest of the
// result (Patch empty). On error, w may have received part of the patch.
func (c *Client) WorkspaceExportTo(ctx context.Context, p api.WorkspaceExportParams, w io.Writer) (api.WorkspaceExportResult, error) {
	var res api.WorkspaceExportResult
	err := c.callData(ctx, "/v1/vm/workspace/export", p, &res, nil, w)
	return res, err
}
