package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/model"
)

// Register records an existing ext4 root filesystem. Its files are never
// modified or deleted by banger.
func (s *Service) Register(ctx context.Context, p api.ImageRegisterParams, caller Caller) (model.Image, error) {
	if p.RootfsPath == "" {
		return model.Image{}, api.Errorf(api.ErrInvalid, "register image: rootfs path required")
	}
	rec := model.Image{
		Name: p.Name, Source: "register", SourceRef: p.RootfsPath, RootfsPath: p.RootfsPath,
		WorkSeedPath: p.WorkSeedPath, KernelPath: p.KernelPath, InitrdPath: p.InitrdPath,
		ModulesDir: p.ModulesDir, KernelRef: p.KernelRef, Docker: p.Docker, Init: p.Init,
	}
	if err := checkInit(rec.Init); err != nil {
		return model.Image{}, err
	}
	if rec.Name == "" {
		base := filepath.Base(p.RootfsPath)
		rec.Name = sanitize(strings.TrimSuffix(base, filepath.Ext(base)))
	}
	if err := s.checkPath(ctx, "rootfs", &rec.RootfsPath, false); err != nil {
		return model.Image{}, fmt.Errorf("register image: %w", err)
	}
	rec.SourceRef = rec.RootfsPath
	if err := s.checkRecord(ctx, &rec); err != nil {
		return model.Image{}, fmt.Errorf("register image: %w", err)
	}
	if err := checkExt4(rec.RootfsPath); err != nil {
		return model.Image{}, fmt.Errorf("register image: %w", err)
	}
	if err := checkUserland(ctx, rec.RootfsPath); err != nil {
		return model.Image{}, fmt.Errorf("register image: %w", err)
	}
	fi, err := os.Stat(rec.RootfsPath)
	if err != nil {
		return model.Image{}, fmt.Errorf("register image: %w", err)
	}
	id, err := newID()
	if err != nil {
		return model.Image{}, err
	}
	rec.ID = id
	rec.SizeBytes = fi.Size()
	rec.OwnerUID, rec.OwnerGID = caller.UID, caller.GID
	rec.CreatedAt = time.Now().UTC()
	if err := s.store.InsertImage(ctx, rec); err != nil {
		return model.Image{}, err
	}
	s.log.Info("image registered", "image", rec.Name, "id", rec.ID, "rootfs", rec.RootfsPath)
	return rec, nil
}

// checkExt4 looks for the ext2/3/4 superblock magic 0xEF53 at offset 1080.
func checkExt4(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1080); err != nil {
		return api.Errorf(api.ErrInvalid, "%s is not an ext4 filesystem (too short)", path)
	}
	if binary.LittleEndian.Uint16(magic[:]) != 0xEF53 {
		return api.Errorf(api.ErrInvalid, "%s is not an ext4 filesystem (no superblock magic)", path)
	}
	return nil
}

var debugfsType = regexp.MustCompile(`Type: (regular|symlink)`)

// checkUserland makes sure the filesystem has /bin/sh or /sbin/init (a
// symlink counts), read with debugfs so nothing is mounted.
func checkUserland(ctx context.Context, path string) error {
	for _, p := range []string{"/bin/sh", "/sbin/init"} {
		out, err := debugfsStat(ctx, path, p)
		if err != nil {
			return err
		}
		if debugfsType.Match(out) {
			return nil
		}
	}
	return api.Errorf(api.ErrInvalid, "%s has no usable userland: neither /bin/sh nor /sbin/init exists", path)
}

// debugfsStat runs `debugfs -R "stat P"` read-only on an ext4 file.
func debugfsStat(ctx context.Context, image, p string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "debugfs", "-c", "-R", "stat "+p, image)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("debugfs: %w: %s", err, lastLine(stderr.String()))
	}
	return stdout.Bytes(), nil
}
