package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"banger/internal/api"
	"banger/internal/authz"
)

// workDir creates a work folder under the store folder (same file system as
// the final folders, so the result can be renamed into place) and a cleanup
// that removes it unless *kept is set.
func (s *Service) workDir() (string, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return "", fmt.Errorf("kernel store %s: %w", s.dir, err)
	}
	dir, err := os.MkdirTemp(s.dir, tmpPrefix)
	if err != nil {
		return "", fmt.Errorf("kernel store %s: %w", s.dir, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// entryFor turns a layout into the row recorded for kernel name.
func (s *Service) entryFor(name string, l layout, distro, source string) api.KernelEntry {
	final := s.path(name)
	e := api.KernelEntry{
		Name:          name,
		Distro:        distro,
		Arch:          l.arch,
		KernelVersion: l.version,
		SHA256:        l.sha256,
		Source:        source,
		ImportedAt:    time.Now().UTC().Format(time.RFC3339),
		KernelPath:    filepath.Join(final, l.kernel),
	}
	if l.initrd != "" {
		e.InitrdPath = filepath.Join(final, l.initrd)
	}
	if l.modules != "" {
		e.ModulesDir = filepath.Join(final, l.modules)
	}
	return e
}

// commit renames the finished folder built into place as e.Name and inserts
// the row, last. With replace an existing kernel of that name is swapped out
// (refused while in use); without it a taken name is api.ErrExists. On any
// failure the store is left as it was. Once started, commit ignores the
// cancellation of ctx so the folder and the row stay consistent. The
// OnStored hook runs after a commit, outside the service's lock, and reports
// on progress (nil: not reported).
func (s *Service) commit(ctx context.Context, built string, e api.KernelEntry, replace bool, progress func(api.ProgressEvent)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	if err := s.commitLocked(ctx, built, e, replace); err != nil {
		return err
	}
	if s.onStored != nil {
		if progress == nil {
			progress = func(api.ProgressEvent) {}
		}
		s.onStored(ctx, progress)
	}
	return nil
}

func (s *Service) commitLocked(ctx context.Context, built string, e api.KernelEntry, replace bool) error {
	caller := authz.CallerFrom(ctx)
	e.OwnerUID = caller.UID
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.store.GetKernel(ctx, e.Name)
	exists := err == nil
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("kernel %s: %w", e.Name, err)
	}
	if exists && !replace {
		return api.Errorf(api.ErrExists, "kernel %s already exists (delete it first, or pull with --force)", e.Name)
	}
	if exists {
		// The server's door allowed this request; the kernel may have been
		// recorded by someone else since, so replacing is decided again here.
		if err := authz.Decide(caller, authz.Change, authz.Object{Kind: authz.Kernel, Name: e.Name, Owner: old.OwnerUID}); err != nil {
			return err
		}
		if err := s.checkUnused(ctx, e.Name); err != nil {
			return err
		}
	}
	// A folder without a row is debris from a crash: it is replaced too.
	aside, err := s.moveAside(e.Name)
	if err != nil {
		return fmt.Errorf("kernel %s: move old folder: %w", e.Name, err)
	}
	if err := os.Rename(built, s.path(e.Name)); err != nil {
		s.restore(aside, e.Name)
		return fmt.Errorf("kernel %s: move into place: %w", e.Name, err)
	}
	undo := func() {
		_ = os.RemoveAll(s.path(e.Name))
		s.restore(aside, e.Name)
	}
	if exists {
		if err := s.store.DeleteKernel(ctx, e.Name); err != nil {
			undo()
			return fmt.Errorf("kernel %s: replace row: %w", e.Name, err)
		}
	}
	if err := s.store.InsertKernel(ctx, e); err != nil {
		undo()
		if exists {
			if rerr := s.store.InsertKernel(ctx, old); rerr != nil {
				s.log.Error("kernel: restore row", "kernel", e.Name, "err", rerr)
			}
		}
		if errors.Is(err, api.ErrExists) {
			return api.Errorf(api.ErrExists, "kernel %s already exists", e.Name)
		}
		return fmt.Errorf("kernel %s: record: %w", e.Name, err)
	}
	s.removeAside(aside)
	return nil
}
