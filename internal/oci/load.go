package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"banger/internal/api"
	"banger/internal/iox"
)

// Load reads an image from a local archive into the cache: a `docker save`
// tarball, an OCI image layout directory, or a tar of an OCI image layout.
// When the archive holds several images, the linux/amd64 one (or the only
// one) is taken.
func (c *Client) Load(ctx context.Context, path string) (*Image, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, api.Errorf(api.ErrNotFound, "load %s: no such file or directory", path)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if fi.IsDir() {
		img, err := c.loadLayout(ctx, path, path)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		return img, nil
	}
	hasLayout, err := tarHasLayout(path)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "load %s: not a tar archive: %w", path, err)
	}
	var img *Image
	if hasLayout {
		img, err = c.loadLayoutTar(ctx, path)
	} else {
		img, err = c.loadTarball(ctx, path)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return img, nil
}

// loadLayout loads the image of an OCI layout directory.
func (c *Client) loadLayout(ctx context.Context, dir, ref string) (*Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "not an OCI image layout: %w", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "not an OCI image layout: %w", err)
	}
	img, refName, err := pickLayoutImage(idx, 0)
	if err != nil {
		return nil, err
	}
	if refName != "" {
		ref = refName
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	if err := c.cache.writeBytes(digest, raw); err != nil {
		return nil, fmt.Errorf("cache manifest: %w", err)
	}
	cfg, err := c.cacheConfig(img)
	if err != nil {
		return nil, err
	}
	layers, err := c.cacheLayers(ctx, img, false)
	if err != nil {
		return nil, err
	}
	return &Image{Ref: ref, Digest: digest.String(), Config: cfg, Layers: layers}, nil
}

// loadTarball loads a `docker save` tarball. Its layers are cached
// uncompressed, under their diff IDs.
func (c *Client) loadTarball(ctx context.Context, path string) (*Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "not a docker-save tarball or OCI layout: %w", err)
	}
	if len(m) != 1 {
		return nil, api.Errorf(api.ErrInvalid, "tarball holds %d images; banger imports exactly one", len(m))
	}
	img, err := tarball.Image(opener, nil)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "read docker-save tarball: %w", err)
	}
	ref := path
	if len(m[0].RepoTags) > 0 {
		ref = m[0].RepoTags[0]
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	cfg, err := c.cacheConfig(img)
	if err != nil {
		return nil, err
	}
	layers, err := c.cacheLayers(ctx, img, true)
	if err != nil {
		return nil, err
	}
	return &Image{Ref: ref, Digest: id.String(), Config: cfg, Layers: layers}, nil
}

// cacheLayers caches img's layers and returns them as cached: compressed
// under their digests, or uncompressed under their diff IDs (a docker-save
// tarball's layers).
func (c *Client) cacheLayers(ctx context.Context, img v1.Image, uncompressed bool) ([]Layer, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read layers: %w", err)
	}
	var layers []Layer
	for _, l := range ls {
		var h v1.Hash
		open, mt := l.Compressed, "application/vnd.oci.image.layer.v1.tar"
		if uncompressed {
			h, err = l.DiffID()
			open = l.Uncompressed
		} else {
			h, err = l.Digest()
			m, _ := l.MediaType()
			mt = string(m)
		}
		if err != nil {
			return nil, err
		}
		if err := c.cacheLayer(ctx, h, open); err != nil {
			return nil, err
		}
		cl, err := c.layerFromCache(h, mt)
		if err != nil {
			return nil, err
		}
		layers = append(layers, cl)
	}
	return layers, nil
}

// cacheConfig stores the image's config blob and parses it.
func (c *Client) cacheConfig(img v1.Image) (*v1.ConfigFile, error) {
	name, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if err := c.cache.writeBytes(name, raw); err != nil {
		return nil, fmt.Errorf("cache config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if err := checkPlatform(cfg); err != nil {
		return nil, api.Errorf(api.ErrInvalid, "%w", err)
	}
	return cfg, nil
}

// cacheLayer copies one layer into the cache unless it is there already.
func (c *Client) cacheLayer(ctx context.Context, h v1.Hash, open func() (io.ReadCloser, error)) error {
	if err := checkDigest(h); err != nil {
		return err
	}
	if c.cache.has(h) {
		return nil
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("read layer %s: %w", h, err)
	}
	defer rc.Close()
	if err := c.cache.write(h, -1, iox.ContextReader(ctx, rc), nil); err != nil {
		return fmt.Errorf("cache layer: %w", err)
	}
	return nil
}

// pickLayoutImage finds the linux/amd64 image (or the only image) of an
// index, looking one level into nested indexes. It also returns the ref
// name annotation, if any.
func pickLayoutImage(idx v1.ImageIndex, depth int) (v1.Image, string, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	var images []v1.Descriptor
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsImage():
			if d.Platform == nil || (d.Platform.OS == "linux" && d.Platform.Architecture == "amd64") {
				images = append(images, d)
			}
		case d.MediaType.IsIndex() && depth == 0:
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, "", err
			}
			img, ref, err := pickLayoutImage(child, depth+1)
			if err == nil {
				return img, firstNonEmpty(ref, refAnnotation(d)), nil
			}
		}
	}
	if len(images) == 0 {
		return nil, "", api.Errorf(api.ErrInvalid, "no linux/amd64 image in the layout")
	}
	if len(images) > 1 {
		return nil, "", api.Errorf(api.ErrInvalid, "layout holds %d images; banger imports exactly one", len(images))
	}
	img, err := idx.Image(images[0].Digest)
	if err != nil {
		return nil, "", err
	}
	return img, refAnnotation(images[0]), nil
}

func refAnnotation(d v1.Descriptor) string {
	return firstNonEmpty(d.Annotations["io.containerd.image.name"], d.Annotations["org.opencontainers.image.ref.name"])
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tarHasLayout reports whether a tar file holds an "oci-layout" file at its
// top level (OCI layout tars, and docker save since Docker 25).
func tarHasLayout(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if filepath.Clean(h.Name) == "oci-layout" {
			return true, nil
		}
	}
}
