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

// workSeedFile is the name of a registered image's work disk seed.
const workSeedFile = "work-seed.ext4"

// Register imports an existing ext4 root filesystem (and work disk seed)
// into managed storage. Each file is opened once, as the caller, and copied
// (sparse) from that descriptor: later changes to the caller's file, or a
// symlink put in its place, do not reach any VM. The caller's files are
// never modified.
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
	if !filepath.IsAbs(rec.RootfsPath) {
		return model.Image{}, api.Errorf(api.ErrInvalid, "register image: rootfs path %q must be absolute", rec.RootfsPath)
	}
	rec.RootfsPath = filepath.Clean(rec.RootfsPath)
	rec.SourceRef = rec.RootfsPath
	seedPath := rec.WorkSeedPath
	rec.WorkSeedPath = "" // checked and opened below, with the rootfs
	if err := s.checkRecord(ctx, &rec); err != nil {
		return model.Image{}, fmt.Errorf("register image: %w", err)
	}
	rootfs, err := s.openRead(ctx, "rootfs", rec.RootfsPath)
	if err != nil {
		return model.Image{}, fmt.Errorf("register image: %w", err)
	}
	defer rootfs.Close()
	if err := checkExt4(rootfs, rec.RootfsPath); err != nil {
		return model.Image{}, fmt.Errorf("register image: %w", err)
	}
	var seed *os.File
	if seedPath != "" {
		if !filepath.IsAbs(seedPath) {
			return model.Image{}, api.Errorf(api.ErrInvalid, "register image: work seed path %q must be absolute", seedPath)
		}
		if seed, err = s.openRead(ctx, "work seed", filepath.Clean(seedPath)); err != nil {
			return model.Image{}, fmt.Errorf("register image: %w", err)
		}
		defer seed.Close()
		if err := checkExt4(seed, seedPath); err != nil {
			return model.Image{}, fmt.Errorf("register image: work seed: %w", err)
		}
	}
	id, err := newID()
	if err != nil {
		return model.Image{}, err
	}
	dir := s.imageDir(id)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return model.Image{}, fmt.Errorf("register image: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return model.Image{}, fmt.Errorf("register image: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	size, err := importFile(ctx, rootfs, filepath.Join(dir, rootfsFile))
	if err != nil {
		return model.Image{}, fmt.Errorf("register image: copy %s: %w", rec.RootfsPath, err)
	}
	if seed != nil {
		if _, err := importFile(ctx, seed, filepath.Join(dir, workSeedFile)); err != nil {
			return model.Image{}, fmt.Errorf("register image: copy %s: %w", seedPath, err)
		}
		rec.WorkSeedPath = filepath.Join(dir, workSeedFile)
	}
	rec.RootfsPath = filepath.Join(dir, rootfsFile)
	if err := checkUserland(ctx, rec.RootfsPath); err != nil {
		return model.Image{}, fmt.Errorf("register image: %s: %w", rec.SourceRef, err)
	}
	rec.ID = id
	rec.SizeBytes = size
	rec.Managed = true
	rec.OwnerUID, rec.OwnerGID = caller.UID, caller.GID
	rec.CreatedAt = time.Now().UTC()
	if err := s.store.InsertImage(ctx, rec); err != nil {
		return model.Image{}, err
	}
	ok = true
	s.log.Info("image registered", "image", rec.Name, "id", rec.ID, "from", rec.SourceRef, "size", size)
	return rec, nil
}

// checkExt4 looks for the ext2/3/4 superblock magic 0xEF53 at offset 1080.
func checkExt4(f *os.File, path string) error {
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
	return api.Errorf(api.ErrInvalid, "no usable userland: neither /bin/sh nor /sbin/init exists")
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
