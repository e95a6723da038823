package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"banger/internal/api"
)

// rootfsFile is the name of a managed image's filesystem.
const rootfsFile = "rootfs.ext4"

// builtRootfs is a finished ext4 file in its image directory.
type builtRootfs struct {
	ID   string
	Path string
	Size int64
}

// makeRootfs fills a fresh staging directory with fill, turns it into an
// ext4 file (sized to content, or exactly size when size > 0) and moves it
// to STATE/images/<id>/rootfs.ext4. The staging directory is always removed;
// on failure nothing is left behind. The caller removes the image directory
// with discard if it fails later.
func (s *Service) makeRootfs(ctx context.Context, size int64, fill func(ctx context.Context, root string) error, progress func(api.ProgressEvent)) (builtRootfs, error) {
	imagesDir := filepath.Join(s.stateDir, "images")
	if err := os.MkdirAll(imagesDir, 0o700); err != nil {
		return builtRootfs{}, fmt.Errorf("create images directory: %w", err)
	}
	staging, err := os.MkdirTemp(imagesDir, ".staging-")
	if err != nil {
		return builtRootfs{}, fmt.Errorf("create staging directory: %w", err)
	}
	defer s.removeStaging(staging)
	root := filepath.Join(staging, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return builtRootfs{}, err
	}
	if err := fill(ctx, root); err != nil {
		return builtRootfs{}, err
	}
	if err := ctx.Err(); err != nil {
		return builtRootfs{}, err
	}
	usage, err := measure(root)
	if err != nil {
		return builtRootfs{}, fmt.Errorf("measure content: %w", err)
	}
	fsSize := usage.defaultSize()
	if size > 0 {
		if need := usage.minSize(); size < need {
			return builtRootfs{}, api.Errorf(api.ErrInvalid, "content needs about %s; --size %s is too small", humanSize(need), humanSize(size))
		}
		fsSize = size
	}
	report(progress, api.ProgressEvent{Phase: "mkfs", Detail: humanSize(fsSize), Total: fsSize})
	out := filepath.Join(staging, rootfsFile)
	if err := mkfs(ctx, root, out, fsSize, usage.inodeCount()); err != nil {
		return builtRootfs{}, err
	}
	id, err := newID()
	if err != nil {
		return builtRootfs{}, err
	}
	dir := s.imageDir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return builtRootfs{}, fmt.Errorf("create image directory: %w", err)
	}
	final := filepath.Join(dir, rootfsFile)
	if err := os.Rename(out, final); err != nil {
		os.RemoveAll(dir)
		return builtRootfs{}, fmt.Errorf("move rootfs into place: %w", err)
	}
	return builtRootfs{ID: id, Path: final, Size: fsSize}, nil
}

// removeStaging unmounts anything a tool left mounted inside the staging
// directory (debootstrap mounts /proc and /sys in its target) and removes it.
func (s *Service) removeStaging(dir string) {
	if err := unmountUnder(dir); err != nil {
		s.log.Error("staging directory still has mounts; left in place", "dir", dir, "err", err)
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		s.log.Warn("remove staging directory", "dir", dir, "err", err)
	}
}

// discard removes a managed image directory after a later failure.
func (s *Service) discard(b builtRootfs) {
	if err := os.RemoveAll(s.imageDir(b.ID)); err != nil {
		s.log.Warn("remove image directory", "id", b.ID, "err", err)
	}
}

// usage is what a directory tree needs on ext4.
type usage struct {
	bytes  int64 // data blocks, 4 KiB per started block, hard links once
	inodes int64
}

const blockSize = 4096

// measure walks root without following symlinks.
func measure(root string) (usage, error) {
	var u usage
	seen := map[uint64]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if ino, nlink, ok := inodeOf(fi); ok && nlink > 1 && !fi.IsDir() {
			if seen[ino] {
				return nil
			}
			seen[ino] = true
		}
		u.inodes++
		switch {
		case fi.Mode().IsRegular():
			u.bytes += (fi.Size() + blockSize - 1) / blockSize * blockSize
		case fi.IsDir():
			u.bytes += blockSize
		case fi.Mode()&fs.ModeSymlink != 0 && fi.Size() >= 60:
			u.bytes += blockSize
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return u, nil
	}
	return u, err
}

// inodeCount is the inode count given to mkfs: content plus room to grow.
func (u usage) inodeCount() int64 {
	return u.inodes + u.inodes/4 + 4096
}

// minSize is the smallest filesystem the content fits: data, inode tables
// (256 bytes an inode), and about 5% + 8 MiB of ext4 metadata and journal.
func (u usage) minSize() int64 {
	meta := u.inodeCount() * 256
	return u.bytes + meta + u.bytes/20 + 8<<20
}

// defaultSize is content plus 25% plus 64 MiB, rounded up to 1 MiB.
func (u usage) defaultSize() int64 {
	n := u.minSize() + u.bytes/4 + 64<<20
	return (n + 1<<20 - 1) &^ (1<<20 - 1)
}
