package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/model"
	"banger/internal/oci"
)

// Pull fetches an image from a registry (with the caller's docker
// credentials) and makes it a managed ext4 image.
func (s *Service) Pull(ctx context.Context, p api.ImagePullParams, caller Caller, progress func(api.ProgressEvent)) (model.Image, error) {
	if strings.TrimSpace(p.Ref) == "" {
		return model.Image{}, api.Errorf(api.ErrInvalid, "pull image: reference required")
	}
	if p.SizeBytes < 0 {
		return model.Image{}, api.Errorf(api.ErrInvalid, "pull image: negative size")
	}
	rec := model.Image{
		Name: p.Name, Source: "pull", SourceRef: p.Ref, KernelRef: p.KernelRef,
		KernelPath: p.KernelPath, InitrdPath: p.InitrdPath, ModulesDir: p.ModulesDir,
	}
	if rec.Name == "" {
		rec.Name = DefaultName(p.Ref)
	}
	if err := s.checkRecord(ctx, &rec); err != nil {
		return model.Image{}, fmt.Errorf("pull %s: %w", p.Ref, err)
	}
	auth, err := s.callerAuth(ctx, caller)
	if err != nil {
		return model.Image{}, fmt.Errorf("pull %s: %w", p.Ref, err)
	}
	img, err := s.oci.Fetch(ctx, p.Ref, auth, progress)
	if err != nil {
		return model.Image{}, err
	}
	return s.fromOCI(ctx, rec, img, p.SizeBytes, caller, progress)
}

// Import loads a `docker save` tarball, an OCI layout directory or an OCI
// layout tar and makes it a managed ext4 image.
func (s *Service) Import(ctx context.Context, path, name string, caller Caller, progress func(api.ProgressEvent)) (model.Image, error) {
	if !filepath.IsAbs(path) {
		return model.Image{}, api.Errorf(api.ErrInvalid, "import image: path %q must be absolute", path)
	}
	if err := s.checkRead(ctx, path); err != nil {
		return model.Image{}, fmt.Errorf("import %s: %w", path, err)
	}
	if name != "" {
		if err := ValidName(name); err != nil {
			return model.Image{}, err
		}
		if err := s.checkNameFree(ctx, name); err != nil {
			return model.Image{}, err
		}
	}
	report(progress, api.ProgressEvent{Phase: "load", Detail: path})
	img, err := s.oci.Load(ctx, path)
	if err != nil {
		return model.Image{}, err
	}
	rec := model.Image{Name: name, Source: "import", SourceRef: path}
	if rec.Name == "" {
		ref := img.Ref
		if ref == path {
			ref = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".tar"), ".oci")
		}
		rec.Name = DefaultName(ref)
	}
	if err := s.checkRecord(ctx, &rec); err != nil {
		return model.Image{}, fmt.Errorf("import %s: %w", path, err)
	}
	return s.fromOCI(ctx, rec, img, 0, caller, progress)
}

// fromOCI applies the image's layers, makes the ext4 file and records it.
func (s *Service) fromOCI(ctx context.Context, rec model.Image, img *oci.Image, size int64, caller Caller, progress func(api.ProgressEvent)) (model.Image, error) {
	fill := func(ctx context.Context, root string) error {
		before := func(i int) {
			report(progress, api.ProgressEvent{Phase: "apply", Detail: img.Layers[i].Digest, Current: int64(i + 1), Total: int64(len(img.Layers))})
		}
		return applyLayers(ctx, img.Layers, root, s.imageLimit(), before)
	}
	rec.Digest = img.Digest
	if img.Config != nil {
		rec.Env = img.Config.Config.Env
		rec.Entrypoint = img.Config.Config.Entrypoint
		rec.Cmd = img.Config.Config.Cmd
		rec.Init = img.Config.Config.Labels[InitLabel]
		if err := checkInit(rec.Init); err != nil {
			return model.Image{}, fmt.Errorf("%s %s: label %s: %w", rec.Source, rec.SourceRef, InitLabel, err)
		}
	}
	built, err := s.makeRootfs(ctx, size, fill, progress)
	if err != nil {
		return model.Image{}, fmt.Errorf("%s %s: %w", rec.Source, rec.SourceRef, err)
	}
	return s.record(ctx, rec, built, caller)
}

// record inserts a managed image row; on failure the files go.
func (s *Service) record(ctx context.Context, rec model.Image, built builtRootfs, caller Caller) (model.Image, error) {
	rec.ID = built.ID
	rec.RootfsPath = built.Path
	rec.SizeBytes = built.Size
	rec.Managed = true
	rec.OwnerUID, rec.OwnerGID = caller.UID, caller.GID
	rec.CreatedAt = time.Now().UTC()
	if err := s.store.InsertImage(ctx, rec); err != nil {
		s.discard(built)
		return model.Image{}, err
	}
	s.log.Info("image created", "image", rec.Name, "id", rec.ID, "source", rec.Source, "ref", rec.SourceRef, "size", rec.SizeBytes)
	return rec, nil
}

// checkRecord validates the name and the optional boot files of rec before
// any work is done.
func (s *Service) checkRecord(ctx context.Context, rec *model.Image) error {
	if err := ValidName(rec.Name); err != nil {
		return err
	}
	if rec.KernelPath != "" && rec.KernelRef != "" {
		return api.Errorf(api.ErrInvalid, "give a kernel path or a kernel ref, not both")
	}
	if err := s.checkNameFree(ctx, rec.Name); err != nil {
		return err
	}
	for _, f := range []struct {
		what string
		path *string
		dir  bool
	}{
		{"kernel", &rec.KernelPath, false},
		{"initrd", &rec.InitrdPath, false},
		{"modules dir", &rec.ModulesDir, true},
		{"work seed", &rec.WorkSeedPath, false},
	} {
		if err := s.checkPath(ctx, f.what, f.path, f.dir); err != nil {
			return err
		}
	}
	return nil
}

// checkPath checks that *p (if set) is an absolute path the caller may read,
// to a directory or a regular file as wanted, and cleans it.
func (s *Service) checkPath(ctx context.Context, what string, p *string, dir bool) error {
	if *p == "" {
		return nil
	}
	if !filepath.IsAbs(*p) {
		return api.Errorf(api.ErrInvalid, "%s path %q must be absolute", what, *p)
	}
	*p = filepath.Clean(*p)
	if err := s.checkRead(ctx, *p); err != nil {
		return fmt.Errorf("%s %s: %w", what, *p, err)
	}
	fi, err := os.Stat(*p)
	if errors.Is(err, fs.ErrNotExist) {
		return api.Errorf(api.ErrNotFound, "%s %s: no such file or directory", what, *p)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, *p, err)
	}
	if dir && !fi.IsDir() {
		return api.Errorf(api.ErrInvalid, "%s %s is not a directory", what, *p)
	}
	if !dir && !fi.Mode().IsRegular() {
		return api.Errorf(api.ErrInvalid, "%s %s is not a regular file", what, *p)
	}
	return nil
}

// callerAuth points the registry client at the caller's docker config, once
// the caller is known to be allowed to read it.
func (s *Service) callerAuth(ctx context.Context, caller Caller) (oci.Auth, error) {
	if caller.Home == "" {
		return oci.Auth{}, nil
	}
	cfg := filepath.Join(caller.Home, ".docker", "config.json")
	if _, err := os.Stat(cfg); err != nil {
		return oci.Auth{}, nil
	}
	if err := s.checkRead(ctx, cfg); err != nil {
		return oci.Auth{}, fmt.Errorf("docker config %s: %w", cfg, err)
	}
	return oci.Auth{DockerConfig: cfg}, nil
}

// report sends an event when progress is not nil.
func report(progress func(api.ProgressEvent), ev api.ProgressEvent) {
	if progress != nil {
		progress(ev)
	}
}
