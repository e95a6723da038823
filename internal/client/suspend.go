package client

import (
	"context"

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
