package client

import (
	"context"

	"banger/internal/api"
)

// KernelCatalog lists the kernels banger can fetch.
func (c *Client) KernelCatalog(ctx context.Context) ([]api.KernelCatalogEntry, error) {
	var res api.KernelCatalogResult
	err := c.call(ctx, "/v1/kernel/catalog", nil, &res, nil)
	return res.Entries, err
}

// KernelList lists stored kernels.
func (c *Client) KernelList(ctx context.Context) ([]api.KernelEntry, error) {
	var res api.KernelListResult
	err := c.call(ctx, "/v1/kernel/list", nil, &res, nil)
	return res.Entries, err
}

// KernelShow returns one kernel.
func (c *Client) KernelShow(ctx context.Context, name string) (api.KernelEntry, error) {
	var res api.KernelShowResult
	err := c.call(ctx, "/v1/kernel/show", api.KernelRefParams{Name: name}, &res, nil)
	return res.Entry, err
}

// KernelPull fetches a catalog kernel, reporting progress.
func (c *Client) KernelPull(ctx context.Context, p api.KernelPullParams, progress func(api.ProgressEvent)) (api.KernelEntry, error) {
	var res api.KernelShowResult
	err := c.call(ctx, "/v1/kernel/pull", p, &res, orNop(progress))
	return res.Entry, err
}

// KernelImport copies a kernel from a host folder into the store.
func (c *Client) KernelImport(ctx context.Context, p api.KernelImportParams) (api.KernelEntry, error) {
	var res api.KernelShowResult
	err := c.call(ctx, "/v1/kernel/import", p, &res, nil)
	return res.Entry, err
}

// KernelDelete removes a kernel.
func (c *Client) KernelDelete(ctx context.Context, name string) error {
	return c.call(ctx, "/v1/kernel/delete", api.KernelRefParams{Name: name}, nil, nil)
}

func orNop(f func(api.ProgressEvent)) func(api.ProgressEvent) {
	if f == nil {
		return func(api.ProgressEvent) {}
	}
	return f
}
