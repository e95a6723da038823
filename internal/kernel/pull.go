package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"banger/internal/api"
)

// Pull fetches a catalog kernel into the store. It is idempotent: a kernel
// already pulled is returned as is unless p.Force. The work happens in a
// STATE/kernels/.tmp-* folder renamed into place at the end, and the row is
// inserted last; on failure or cancellation nothing is left behind.
func (s *Service) Pull(ctx context.Context, p api.KernelPullParams, progress func(api.ProgressEvent)) (api.KernelEntry, error) {
	if progress == nil {
		progress = func(api.ProgressEvent) {}
	}
	if err := checkName(p.Name); err != nil {
		return api.KernelEntry{}, err
	}
	entry, err := s.lookup(p.Name)
	if err != nil {
		return api.KernelEntry{}, err
	}
	existing, err := s.store.GetKernel(ctx, p.Name)
	switch {
	case err == nil && !p.Force:
		progress(api.ProgressEvent{Phase: "done", Detail: "already pulled"})
		return existing, nil
	case err == nil:
		if err := s.checkUnused(ctx, p.Name); err != nil {
			return api.KernelEntry{}, err
		}
	case !errors.Is(err, api.ErrNotFound):
		return api.KernelEntry{}, fmt.Errorf("pull kernel %s: %w", p.Name, err)
	}

	work, err := s.workDir()
	if err != nil {
		return api.KernelEntry{}, err
	}
	defer func() {
		if err := os.RemoveAll(work); err != nil {
			s.log.Warn("kernel: remove work folder", "path", work, "err", err)
		}
	}()
	e, err := s.pullInto(ctx, entry, work, progress)
	if err != nil {
		if ctx.Err() != nil {
			return api.KernelEntry{}, fmt.Errorf("pull kernel %s: %w", p.Name, ctx.Err())
		}
		return api.KernelEntry{}, err
	}
	if err := s.commit(ctx, filepath.Join(work, "kernel"), e, p.Force, progress); err != nil {
		return api.KernelEntry{}, err
	}
	progress(api.ProgressEvent{Phase: "done", Detail: e.Name + " " + e.KernelVersion})
	s.log.Info("kernel pulled", "name", e.Name, "version", e.KernelVersion, "source", e.Source)
	return e, nil
}

// pullInto fetches entry into work/src and assembles it in work/kernel.
func (s *Service) pullInto(ctx context.Context, entry catalogEntry, work string, progress func(api.ProgressEvent)) (api.KernelEntry, error) {
	src := filepath.Join(work, "src")
	built := filepath.Join(work, "kernel")
	for _, d := range []string{src, built} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return api.KernelEntry{}, err
		}
	}
	var (
		t      tree
		source string
		err    error
	)
	switch entry.Kind {
	case kindDebian:
		t, source, err = fetchDebian(ctx, entry, src, progress)
	case kindBuild:
		t, source, err = buildSource(ctx, entry, src, progress)
	case kindOCI:
		t, source, err = s.fetchOCI(ctx, entry, src, progress)
	default:
		err = fmt.Errorf("unknown kind %q", entry.Kind)
	}
	if err != nil {
		return api.KernelEntry{}, fmt.Errorf("pull kernel %s: %w", entry.Name, err)
	}
	l, err := assemble(ctx, t, built, progress)
	if err != nil {
		return api.KernelEntry{}, fmt.Errorf("pull kernel %s: %w", entry.Name, err)
	}
	if entry.SHA256 != "" {
		progress(api.ProgressEvent{Phase: "verify", Detail: "kernel image sha256"})
		if l.sha256 != entry.SHA256 {
			return api.KernelEntry{}, api.Errorf(api.ErrInvalid, "pull kernel %s: kernel image sha256 is %s, the catalog says %s", entry.Name, l.sha256, entry.SHA256)
		}
	}
	if l.arch == "" {
		l.arch = entry.Arch
	}
	return s.entryFor(entry.Name, l, entry.Distro, source), nil
}
