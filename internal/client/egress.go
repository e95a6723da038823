package client

import (
	"context"

	"banger/internal/api"
)

// VMEgress returns a VM's outbound policy and its recent denials.
func (c *Client) VMEgress(ctx context.Context, ref string) (api.VMEgressResult, error) {
	var res api.VMEgressResult
	err := c.call(ctx, "/v1/vm/egress", api.VMRefParams{IDOrName: ref}, &res, nil)
	return res, err
}
