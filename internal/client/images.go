package client

import (
	"context"

	"banger/internal/api"
	"banger/internal/model"
)

// ImageList lists images.
func (c *Client) ImageList(ctx context.Context) ([]model.Image, error) {
	var res api.ImageListResult
	err := c.call(ctx, "/v1/image/list", nil, &res, nil)
	return res.Images, err
}

// ImageShow returns one image.
func (c *Client) ImageShow(ctx context.Context, ref string) (model.Image, error) {
	var res api.ImageShowResult
	err := c.call(ctx, "/v1/image/show", api.ImageRefParams{IDOrName: ref}, &res, nil)
	return res.Image, err
}

// ImageDelete removes an image.
func (c *Client) ImageDelete(ctx context.Context, ref string) error {
	return c.call(ctx, "/v1/image/delete", api.ImageRefParams{IDOrName: ref}, nil, nil)
}

// ImagePull pulls an image from a registry, reporting progress.
func (c *Client) ImagePull(ctx context.Context, p api.ImagePullParams, progress func(api.ProgressEvent)) (model.Image, error) {
	var res api.ImageShowResult
	err := c.call(ctx, "/v1/image/pull", p, &res, orNop(progress))
	return res.Image, err
}

// ImageImport imports an image archive or layout from a host path.
func (c *Client) ImageImport(ctx context.Context, p api.ImageImportParams, progress func(api.ProgressEvent)) (model.Image, error) {
	var res api.ImageShowResult
	err := c.call(ctx, "/v1/image/import", p, &res, orNop(progress))
	return res.Image, err
}

// ImageBuild builds a distribution image.
func (c *Client) ImageBuild(ctx context.Context, p api.ImageBuildParams, progress func(api.ProgressEvent)) (model.Image, error) {
	var res api.ImageShowResult
	err := c.call(ctx, "/v1/image/build", p, &res, orNop(progress))
	return res.Image, err
}

// ImageRegister records an existing ext4 root filesystem.
func (c *Client) ImageRegister(ctx context.Context, p api.ImageRegisterParams) (model.Image, error) {
	var res api.ImageShowResult
	err := c.call(ctx, "/v1/image/register", p, &res, nil)
	return res.Image, err
}
