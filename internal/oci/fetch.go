package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"banger/internal/api"
	"banger/internal/iox"
)

// fetchJobs is how many layers are downloaded at once.
const fetchJobs = 3

// Fetch resolves ref in its registry and brings the manifest, config and
// layers into the cache; blobs already cached are not downloaded again, and
// a manifest already cached under the digest the registry reports for the
// tag is not fetched again either. A multi-arch index resolves to its
// linux/amd64 image. progress, when not nil, receives "resolve" and per-layer
// "fetch" events; it may be called from several goroutines, one at a time.
func (c *Client) Fetch(ctx context.Context, ref string, auth Auth, progress func(api.ProgressEvent)) (*Image, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "pull %s: bad image reference: %w", ref, err)
	}
	kc, err := auth.keychain()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	puller, err := remote.NewPuller(
		remote.WithTransport(httpsOnly{next: c.transport}),
		remote.WithAuthFromKeychain(kc),
		remote.WithUserAgent("banger"),
	)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	report(progress, api.ProgressEvent{Phase: "resolve", Detail: r.Name()})
	raw, digest, err := c.manifest(ctx, puller, r)
	if err != nil {
		return nil, registryError(ref, "resolve", err)
	}
	if isIndex(raw) {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("pull %s: parse index: %w", ref, err)
		}
		child, err := pickPlatform(idx)
		if err != nil {
			return nil, api.Errorf(api.ErrInvalid, "pull %s: %w", ref, err)
		}
		raw, digest, err = c.manifest(ctx, puller, r.Context().Digest(child.String()))
		if err != nil {
			return nil, registryError(ref, "resolve linux/amd64 manifest", err)
		}
		if isIndex(raw) {
			return nil, api.Errorf(api.ErrInvalid, "pull %s: nested image indexes are not supported", ref)
		}
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("pull %s: parse manifest: %w", ref, err)
	}
	if m.Config.MediaType.IsSchema1() || m.SchemaVersion != 2 {
		return nil, api.Errorf(api.ErrInvalid, "pull %s: unsupported manifest schema %d", ref, m.SchemaVersion)
	}
	cfg, err := c.fetchConfig(ctx, puller, r.Context(), m.Config)
	if err != nil {
		return nil, registryError(ref, "fetch config", err)
	}
	if err := checkPlatform(cfg); err != nil {
		return nil, api.Errorf(api.ErrInvalid, "pull %s: %w", ref, err)
	}
	if max := c.cache.max; max > 0 {
		var total int64
		for _, l := range m.Layers {
			total += l.Size
		}
		if total > max {
			return nil, fmt.Errorf("pull %s: %w", ref, tooLarge(fmt.Sprintf("the image's layers (%s compressed)", FormatSize(total)), max))
		}
	}
	layers, err := c.fetchLayers(ctx, puller, r.Context(), m.Layers, progress)
	if err != nil {
		return nil, registryError(ref, "fetch layers", err)
	}
	return &Image{Ref: r.Name(), Digest: digest.String(), Config: cfg, Layers: layers}, nil
}

// manifest returns the raw manifest for ref and its digest, from the cache
// when the registry's HEAD answer names a digest already cached.
func (c *Client) manifest(ctx context.Context, p *remote.Puller, ref name.Reference) ([]byte, v1.Hash, error) {
	if d, ok := ref.(name.Digest); ok {
		if h, err := v1.NewHash(d.DigestStr()); err == nil && checkDigest(h) == nil && c.cache.has(h) {
			raw, err := c.cache.read(h)
			return raw, h, err
		}
	} else {
		desc, err := p.Head(ctx, ref)
		if err == nil && checkDigest(desc.Digest) == nil && c.cache.has(desc.Digest) {
			raw, err := c.cache.read(desc.Digest)
			return raw, desc.Digest, err
		}
		if err != nil && (isFatalStatus(err) || ctx.Err() != nil) {
			return nil, v1.Hash{}, err
		}
	}
	desc, err := p.Get(ctx, ref)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if err := c.cache.writeBytes(desc.Digest, desc.Manifest); err != nil {
		return nil, v1.Hash{}, fmt.Errorf("cache manifest: %w", err)
	}
	return desc.Manifest, desc.Digest, nil
}

// fetchConfig brings the config blob into the cache and parses it.
func (c *Client) fetchConfig(ctx context.Context, p *remote.Puller, repo name.Repository, d v1.Descriptor) (*v1.ConfigFile, error) {
	if err := c.fetchBlob(ctx, p, repo, d, nil); err != nil {
		return nil, err
	}
	raw, err := c.cache.read(d.Digest)
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", d.Digest, err)
	}
	return cfg, nil
}

// fetchLayers downloads the missing layers, a few at a time.
func (c *Client) fetchLayers(ctx context.Context, p *remote.Puller, repo name.Repository, descs []v1.Descriptor, progress func(api.ProgressEvent)) ([]Layer, error) {
	var mu sync.Mutex
	safe := func(ev api.ProgressEvent) {
		mu.Lock()
		defer mu.Unlock()
		report(progress, ev)
	}
	for _, d := range descs {
		if err := checkDigest(d.Digest); err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchJobs)
	for _, d := range descs {
		g.Go(func() error {
			detail := d.Digest.String()
			if c.cache.has(d.Digest) {
				safe(api.ProgressEvent{Phase: "fetch", Detail: detail + " (cached)", Current: d.Size, Total: d.Size})
				return nil
			}
			return c.fetchBlob(gctx, p, repo, d, throttled(safe, "fetch", detail, d.Size))
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	layers := make([]Layer, 0, len(descs))
	for _, d := range descs {
		l, err := c.layerFromCache(d.Digest, string(d.MediaType))
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return layers, nil
}

// fetchBlob downloads one blob into the cache unless it is there already.
func (c *Client) fetchBlob(ctx context.Context, p *remote.Puller, repo name.Repository, d v1.Descriptor, count func(int64)) error {
	if err := checkDigest(d.Digest); err != nil {
		return err
	}
	if c.cache.has(d.Digest) {
		return nil
	}
	l, err := p.Layer(ctx, repo.Digest(d.Digest.String()))
	if err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	size := d.Size
	if size <= 0 {
		size = -1
	}
	return c.cache.write(d.Digest, size, iox.ContextReader(ctx, rc), count)
}

// isIndex tells an image index from an image manifest.
func isIndex(raw []byte) bool {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return false
	}
	if probe.MediaType != "" {
		return probe.MediaType.IsIndex()
	}
	return len(probe.Manifests) > 0
}

// pickPlatform chooses the linux/amd64 image of an index.
func pickPlatform(idx *v1.IndexManifest) (v1.Hash, error) {
	var seen []string
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			continue
		}
		if d.Platform.OS == "linux" && d.Platform.Architecture == "amd64" {
			return d.Digest, nil
		}
		seen = append(seen, d.Platform.OS+"/"+d.Platform.Architecture)
	}
	if len(seen) == 0 && len(idx.Manifests) == 1 {
		return idx.Manifests[0].Digest, nil
	}
	return v1.Hash{}, fmt.Errorf("no linux/amd64 image in index (has %s)", strings.Join(seen, ", "))
}

// checkPlatform refuses images built for another OS or architecture.
func checkPlatform(cfg *v1.ConfigFile) error {
	if (cfg.OS != "" && cfg.OS != "linux") || (cfg.Architecture != "" && cfg.Architecture != "amd64") {
		return fmt.Errorf("image is %s/%s, banger needs linux/amd64", cfg.OS, cfg.Architecture)
	}
	return nil
}
