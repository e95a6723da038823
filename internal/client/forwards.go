package client

import (
	"context"

	"banger/internal/api"
)

// VMForwardAdd forwards a host loopback port to a guest port.
func (c *Client) VMForwardAdd(ctx context.Context, p api.VMForwardParams) (api.VMForward, error) {
	var res api.VMForwardResult
	err := c.call(ctx, "/v1/vm/forward/add", p, &res, nil)
	return res.Forward, err
}

// VMForwardList lists a VM's forwards.
func (c *Client) VMForwardList(ctx context.Context, ref string) (api.VMForwardListResult, error) {
	var res api.VMForwardListResult
	err := c.call(ctx, "/v1/vm/forward/list", api.VMRefParams{IDOrName: ref}, &res, nil)
	return res, err
}

// VMForwardRemove ends the forward on a host port.
func (c *Client) VMForwardRemove(ctx context.Context, p api.VMForwardRemoveParams) error {
	return c.call(ctx, "/v1/vm/forward/remove", p, nil, nil)
}
