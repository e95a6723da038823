package client

import (
	"context"

	"banger/internal/api"
)

// Ping asks the daemon who it is.
func (c *Client) Ping(ctx context.Context) (api.PingResult, error) {
	var res api.PingResult
	err := c.call(ctx, "/v1/ping", nil, &res, nil)
	return res, err
}

// Shutdown asks the daemon to stop gracefully.
func (c *Client) Shutdown(ctx context.Context) (api.ShutdownResult, error) {
	var res api.ShutdownResult
	err := c.call(ctx, "/v1/shutdown", nil, &res, nil)
	return res, err
}
