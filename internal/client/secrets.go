package client

import (
	"context"

	"banger/internal/api"
	"banger/internal/model"
)

// SecretAdd adds a secret; p.Value is sent once and never returned.
func (c *Client) SecretAdd(ctx context.Context, p api.SecretAddParams) (model.Secret, error) {
	var res api.SecretShowResult
	err := c.call(ctx, "/v1/secret/add", p, &res, nil)
	return res.Secret, err
}

// SecretList returns the caller's secrets (descriptions only).
func (c *Client) SecretList(ctx context.Context) ([]model.Secret, error) {
	var res api.SecretListResult
	err := c.call(ctx, "/v1/secret/list", api.Empty{}, &res, nil)
	return res.Secrets, err
}

// SecretShow returns a secret and the VMs it is bound to.
func (c *Client) SecretShow(ctx context.Context, name string) (api.SecretShowResult, error) {
	var res api.SecretShowResult
	err := c.call(ctx, "/v1/secret/show", api.SecretRefParams{Name: name}, &res, nil)
	return res, err
}

// SecretRemove deletes a secret (refused while bound to a VM).
func (c *Client) SecretRemove(ctx context.Context, name string) error {
	return c.call(ctx, "/v1/secret/rm", api.SecretRefParams{Name: name}, nil, nil)
}
