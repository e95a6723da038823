package oci

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"banger/internal/tarname"
)

// loadLayoutTar unpacks an OCI layout tar into a temporary directory next to
// the cache and loads it from there.
func (c *Client) loadLayoutTar(ctx context.Context, path string) (*Image, error) {
	if err := os.MkdirAll(c.cache.dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(c.cache.dir, ".layout-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := untarPlain(ctx, path, tmp, c.cache.max); err != nil {
		return nil, err
	}
	return c.loadLayout(ctx, tmp, path)
}

// untarPlain extracts the directories and regular files of a tar into dir.
// Other entries (the symlinks docker save adds for old clients) are skipped;
// names leaving dir are refused. Members are counted by their real
// (expanded) size, sparse ones included, against max (0: no bound) before
// anything is written, and written sparse.
func untarPlain(ctx context.Context, path, dir string, max int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name, err := tarname.Clean(h.Name)
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if name == "." {
			continue
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			total += h.Size
			if max > 0 && total > max {
				return tooLarge(fmt.Sprintf("the archive's content (%s and more, expanded)", FormatSize(total)), max)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, err = WriteSparse(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extract %s: %w", h.Name, err)
			}
		}
	}
}
