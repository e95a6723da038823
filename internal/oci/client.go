// Package oci fetches OCI and Docker images from registries and archives into
// a content-addressed blob cache, and hands back their layers oldest first.
package oci

import (
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"banger/internal/api"
)

// Client fetches images into a content-addressed blob cache.
type Client struct {
	cache     *blobCache
	transport http.RoundTripper
	log       *slog.Logger
}

// Option configures a Client.
type Option func(*Client)

// WithTransport sets the HTTP transport used to reach registries (tests use
// it to count requests). Plain HTTP is still refused for non-loopback hosts.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) { c.transport = rt }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) { c.log = l }
}

// NewClient returns a Client whose blobs live in cacheDir/sha256/<hex>.
func NewClient(cacheDir string, opts ...Option) *Client {
	c := &Client{
		cache:     &blobCache{dir: cacheDir},
		transport: remote.DefaultTransport,
		log:       slog.Default(),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Image is an image whose blobs are all in the cache.
type Image struct {
	// Ref is the reference the image came from (registry ref, or the tag or
	// path of an archive).
	Ref string
	// Digest is the manifest digest (for docker-save tarballs, which carry
	// no manifest digest, the config digest, i.e. the docker image ID).
	Digest string
	Config *v1.ConfigFile
	// Layers are oldest first.
	Layers []Layer
}

// BlobPath returns where the cache keeps the blob with the given digest.
func (c *Client) BlobPath(digest string) (string, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", fmt.Errorf("blob path: %w", err)
	}
	if err := checkDigest(h); err != nil {
		return "", err
	}
	return filepath.Join(c.cache.dir, "sha256", h.Hex), nil
}

// layerFromCache describes a cached blob as a Layer.
func (c *Client) layerFromCache(h v1.Hash, mediaType string) (Layer, error) {
	p := c.cache.path(h)
	size, err := fileSize(p)
	if err != nil {
		return Layer{}, err
	}
	return Layer{Digest: h.String(), MediaType: mediaType, Size: size, Path: p}, nil
}

// report sends an event when progress is not nil.
func report(progress func(api.ProgressEvent), ev api.ProgressEvent) {
	if progress != nil {
		progress(ev)
	}
}

// throttled wraps a byte counter so that it reports at most every step bytes
// plus the final count.
func throttled(progress func(api.ProgressEvent), phase, detail string, total int64) func(int64) {
	const step = 512 << 10
	var last int64 = -step
	return func(n int64) {
		if n-last >= step || (total > 0 && n == total) {
			last = n
			report(progress, api.ProgressEvent{Phase: phase, Detail: detail, Current: n, Total: total})
		}
	}
}
