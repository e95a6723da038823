package image

import (
	"context"
	"errors"
	"fmt"
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
	auth, done, err := s.callerAuth(ctx, caller)
	if err != nil {
		return model.Image{}, fmt.Errorf("pull %s: %w", p.Ref, err)
	}
	defer done()
	img, err := s.oci.Fetch(ctx, p.Ref, auth, progress)
	if err != nil {
		return model.Image{}, err
	}
	return s.fromOCI(ctx, rec, img, p.SizeBytes, caller, progress)
}

// Import loads a `docker save` tarball, an OCI layout directory or an OCI
// layout tar and makes it a managed ext4 image. The archive is opened (a
// directory: read) once, as the caller, and loaded from that descriptor or
// from a root-owned copy of the directory.
func (s *Service) Import(ctx context.Context, path, name string, caller Caller, progress func(api.ProgressEvent)) (model.Image, error) {
	if !filepath.IsAbs(path) {
		return model.Image{}, api.Errorf(api.ErrInvalid, "import image: path %q must be absolute", path)
	}
	path = filepath.Clean(path)
	if name != "" {
		if err := ValidName(name); err != nil {
			return model.Image{}, err
		}
		if err := s.checkNameFree(ctx, name); err != nil {
			return model.Image{}, err
		}
	}
	report(progress, api.ProgressEvent{Phase: "load", Detail: path})
	img, err := s.loadAsCaller(ctx, path)
	if err != nil {
		return model.Image{}, err
	}
	rec := model.Image{Name: name, Source: "import", SourceRef: path}
	if rec.Name == "" {
		ref := img.Ref
		if ref == path || strings.HasPrefix(ref, "/") {
			ref = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".tar"), ".oci")
		}
		rec.Name = DefaultName(ref)
	}
	if err := s.checkRecord(ctx, &rec); err != nil {
		return model.Image{}, fmt.Errorf("import %s: %w", path, err)
	}
	return s.fromOCI(ctx, rec, img, 0, caller, progress)
}

// loadAsCaller loads the archive or layout at path, opened as the caller.
func (s *Service) loadAsCaller(ctx context.Context, path string) (*oci.Image, error) {
	var f *os.File
	var err error
	if s.authz == nil {
		f, err = os.Open(path)
	} else {
		f, err = s.authz.OpenDir(ctx, path)
		if errors.Is(err, api.ErrInvalid) { // not a directory
			f, err = s.authz.OpenRead(ctx, path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	if !fi.IsDir() {
		img, err := s.oci.Load(ctx, fdPath(f))
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", path, stripFdPath(err, f))
		}
		return img, nil
	}
	f.Close()
	staging, err := os.MkdirTemp(filepath.Join(s.stateDir, "images"), ".import-")
	if err != nil {
		if err = os.MkdirAll(filepath.Join(s.stateDir, "images"), 0o755); err == nil {
			staging, err = os.MkdirTemp(filepath.Join(s.stateDir, "images"), ".import-")
		}
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
	}
	defer os.RemoveAll(staging)
	layout := filepath.Join(staging, "layout")
	if err := s.copyTreeAsCaller(ctx, path, layout); err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	img, err := s.oci.Load(ctx, layout)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, errors.New(strings.ReplaceAll(err.Error(), layout, path)))
	}
	if img.Ref == layout {
		img.Ref = path
	}
	return img, nil
}

// stripFdPath rewrites the descriptor path in err's text away.
func stripFdPath(err error, f *os.File) error {
	msg := strings.ReplaceAll(err.Error(), "load "+fdPath(f)+": ", "")
	if errors.Is(err, api.ErrInvalid) {
		return api.Errorf(api.ErrInvalid, "%s", msg)
	}
	return errors.New(msg)
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
	// Images boot stored kernels only (kernel_ref): a kernel file named here
	// would be recorded and never booted, so it is refused, not ignored.
	if rec.KernelPath != "" || rec.InitrdPath != "" || rec.ModulesDir != "" {
		return api.Errorf(api.ErrInvalid, "kernel, initrd and modules paths are not supported: import the kernel with 'banger kernel import NAME --from-dir DIR' and name it with kernel_ref (--kernel-ref)")
	}
	if err := s.checkNameFree(ctx, rec.Name); err != nil {
		return err
	}
	for _, f := range []struct {
		what string
		path *string
		dir  bool
	}{
		{"work seed", &rec.WorkSeedPath, false},
	} {
		if err := s.checkPath(ctx, f.what, f.path, f.dir); err != nil {
			return err
		}
	}
	return nil
}

// checkPath checks that *p (if set) is an absolute path the caller can
// open, a directory or a regular file as wanted, and cleans it. It is opened
// as the caller and closed: the path is only recorded.
func (s *Service) checkPath(ctx context.Context, what string, p *string, dir bool) error {
	if *p == "" {
		return nil
	}
	if !filepath.IsAbs(*p) {
		return api.Errorf(api.ErrInvalid, "%s path %q must be absolute", what, *p)
	}
	*p = filepath.Clean(*p)
	var f *os.File
	var err error
	switch {
	case s.authz == nil && dir:
		f, err = os.Open(*p)
	case s.authz == nil:
		f, err = openRegular(*p)
	case dir:
		f, err = s.authz.OpenDir(ctx, *p)
	default:
		f, err = s.authz.OpenRead(ctx, *p)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return f.Close()
}

// callerAuth opens the caller's docker config as the caller and points the
// registry client at that descriptor; a missing one means anonymous pulls.
// done closes it.
func (s *Service) callerAuth(ctx context.Context, caller Caller) (auth oci.Auth, done func(), err error) {
	done = func() {}
	if caller.Home == "" || s.authz == nil {
		return oci.Auth{}, done, nil
	}
	cfg := filepath.Join(caller.Home, ".docker", "config.json")
	f, err := s.authz.OpenRead(ctx, cfg)
	if errors.Is(err, api.ErrNotFound) {
		return oci.Auth{}, done, nil
	}
	if err != nil {
		return oci.Auth{}, done, fmt.Errorf("docker config: %w", err)
	}
	return oci.Auth{DockerConfig: fdPath(f)}, func() { f.Close() }, nil
}

// report sends an event when progress is not nil.
func report(progress func(api.ProgressEvent), ev api.ProgressEvent) {
	if progress != nil {
		progress(ev)
	}
}
