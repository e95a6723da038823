package client

import (
	"context"

	"banger/internal/api"
	"banger/internal/model"
)

// VMSuspend stops a running VM's vCPUs, keeping its memory.
func (c *Client) VMSuspend(ctx context.Context, ref string) (model.VMRecord, error) {
	return c.vmRecord(ctx, "/v1/vm/suspend", ref)
}

// VMResume continues a suspended VM (clock set, RNG reseeded).
func (c *Client) VMResume(ctx context.Context, ref string) (model.VMRecord, error) {
	return c.vmRecord(ctx, "/v1/vm/resume", ref)
}

// VMSnapshot saves a running VM (left suspended unless p.KeepRunning).
func (c *Client) VMSnapshot(ctx context.Context, p api.VMSnapshotParams) (model.Snapshot, error) {
	var res api.SnapshotShowResult
	err := c.call(ctx, "/v1/vm/snapshot", p, &res, nil)
	return res.Snapshot, err
}

// VMFork makes clones of a running VM or of a snapshot; they are ready
// when it returns.
func (c *Client) VMFork(ctx context.Context, p api.VMForkParams) (api.VMForkResult, error) {
	var res api.VMForkResult
	err := c.call(ctx, "/v1/vm/fork", p, &res, nil)
	return res, err
}

// SnapshotList returns the caller's snapshots.
func (c *Client) SnapshotList(ctx context.Context) ([]model.Snapshot, error) {
	var res api.SnapshotListResult
	err := c.call(ctx, "/v1/snapshot/list", api.Empty{}, &res, nil)
	return res.Snapshots, err
}

// SnapshotShow returns one snapshot.
func (c *Client) SnapshotShow(ctx context.Context, ref string) (model.Snapshot, error) {
	var res api.SnapshotShowResult
	err := c.call(ctx, "/v1/snapshot/show", api.SnapshotRefParams{IDOrName: ref}, &res, nil)
	return res.Snapshot, err
}

// SnapshotDelete removes a snapshot no running clone maps.
func (c *Client) SnapshotDelete(ctx context.Context, ref string) error {
	return c.call(ctx, "/v1/snapshot/delete", api.SnapshotRefParams{IDOrName: ref}, nil, nil)
}
