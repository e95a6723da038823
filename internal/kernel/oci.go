package kernel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/image"
	"banger/internal/oci"
)

// ociCacheDir is the default blob cache, inside the store folder, used
// unless UseOCI hands the service a shared client.
const ociCacheDir = ".oci-cache"

// UseOCI makes OCI catalog entries pull through c (for instance the image
// service's client, to share its blob cache). Call it before serving.
func (s *Service) UseOCI(c *oci.Client) { s.oci = c }

// fetchOCI pulls an Ignite-style kernel image (boot/vmlinux or vmlinuz, and
// lib/modules/VERSION) and unpacks its layers into dir.
func (s *Service) fetchOCI(ctx context.Context, e catalogEntry, dir string, progress func(api.ProgressEvent)) (tree, string, error) {
	c := s.oci
	if c == nil {
		c = oci.NewClient(filepath.Join(s.dir, ociCacheDir), oci.WithLogger(s.log))
	}
	img, err := c.Fetch(ctx, e.Ref, oci.Auth{}, progress)
	if err != nil {
		return tree{}, "", err
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return tree{}, "", err
	}
	progress(api.ProgressEvent{Phase: "unpack", Detail: e.Ref, Total: int64(len(img.Layers))})
	if err := image.ApplyLayers(ctx, img.Layers, root); err != nil {
		return tree{}, "", fmt.Errorf("unpack %s: %w", e.Ref, err)
	}
	t, err := scan(root)
	if err != nil {
		return tree{}, "", fmt.Errorf("image %s: %w", e.Ref, err)
	}
	return t, "oci:" + img.Ref + "@" + img.Digest, nil
}
