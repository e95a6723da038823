// Package kernel manages banger's kernel store: one folder per kernel under
// STATE/kernels, recorded in SQLite through Store. Kernels come from a
// catalog (Debian's cloud kernel via the host's apt, OCI kernel images, or a
// local build of the microvm config) or are imported from a folder.
package kernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/oci"
)

// Store is what the service needs from banger's SQLite store.
type Store interface {
	InsertKernel(ctx context.Context, e api.KernelEntry) error           // api.ErrExists on name clash
	GetKernel(ctx context.Context, name string) (api.KernelEntry, error) // api.ErrNotFound
	ListKernels(ctx context.Context) ([]api.KernelEntry, error)
	DeleteKernel(ctx context.Context, name string) error
	KernelUsers(ctx context.Context, name string) (images, vms []string, err error)
}

// Authorizer reads host folders as the API caller (authz.Walk).
type Authorizer interface {
	Walk(ctx context.Context, dir string, include []string, fn func(authz.Entry) error) error
}

// File names inside a kernel's folder.
const (
	ModulesCpio = "banger-modules.cpio"
	InitrdFile  = "initrd.img"
	tmpPrefix   = ".tmp-"
)

// Service implements the kernel commands.
type Service struct {
	dir   string
	store Store
	authz Authorizer
	log   *slog.Logger
	oci   *oci.Client // nil: a client on STATE/kernels/.oci-cache

	mu sync.Mutex // serialises the commit step of pull, import and delete

	onStored func(ctx context.Context, progress func(api.ProgressEvent)) // see OnStored
}

// OnStored makes f run after each kernel is stored (pulled, imported or
// built), before the request returns. Set it before serving.
func (s *Service) OnStored(f func(ctx context.Context, progress func(api.ProgressEvent))) {
	s.onStored = f
}

// New returns a service keeping kernels under dir (STATE/kernels). authz may
// be nil when every caller may read every path (tests, single-user tools).
// Work folders left by an interrupted daemon are removed.
func New(dir string, st Store, authz Authorizer, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{dir: dir, store: st, authz: authz, log: log}
	if olds, _ := filepath.Glob(filepath.Join(dir, tmpPrefix+"*")); len(olds) > 0 {
		for _, o := range olds {
			log.Info("kernel: removing leftover work folder", "path", o)
			_ = os.RemoveAll(o)
		}
	}
	return s
}

// List returns the kernels in the store.
func (s *Service) List(ctx context.Context) ([]api.KernelEntry, error) {
	es, err := s.store.ListKernels(ctx)
	if err != nil {
		return nil, fmt.Errorf("list kernels: %w", err)
	}
	return es, nil
}

// Show returns one kernel.
func (s *Service) Show(ctx context.Context, name string) (api.KernelEntry, error) {
	if err := checkName(name); err != nil {
		return api.KernelEntry{}, err
	}
	e, err := s.store.GetKernel(ctx, name)
	if errors.Is(err, api.ErrNotFound) {
		return api.KernelEntry{}, api.Errorf(api.ErrNotFound, "kernel %s not found (see banger kernel list)", name)
	}
	if err != nil {
		return api.KernelEntry{}, fmt.Errorf("show kernel %s: %w", name, err)
	}
	return e, nil
}

// Delete removes a kernel's row and folder. It refuses, naming them, while
// images or VMs refer to the kernel.
func (s *Service) Delete(ctx context.Context, name string) error {
	if _, err := s.Show(ctx, name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkUnused(ctx, name); err != nil {
		return err
	}
	aside, err := s.moveAside(name)
	if err != nil {
		return fmt.Errorf("delete kernel %s: %w", name, err)
	}
	if err := s.store.DeleteKernel(context.WithoutCancel(ctx), name); err != nil {
		s.restore(aside, name)
		return fmt.Errorf("delete kernel %s: %w", name, err)
	}
	s.removeAside(aside)
	return nil
}

// BootFiles returns what a VM boots with this kernel: the kernel path and the
// modules cpio path ("" when the kernel needs none).
func (s *Service) BootFiles(ctx context.Context, name string) (kernelPath, modulesCpio string, err error) {
	e, err := s.Show(ctx, name)
	if err != nil {
		return "", "", err
	}
	if _, err := os.Stat(e.KernelPath); err != nil {
		return "", "", api.Errorf(api.ErrUnavailable, "kernel %s: image missing: %w (pull or import it again)", name, err)
	}
	cp := filepath.Join(filepath.Dir(e.KernelPath), ModulesCpio)
	switch _, err := os.Stat(cp); {
	case err == nil:
		return e.KernelPath, cp, nil
	case errors.Is(err, fs.ErrNotExist):
		return e.KernelPath, "", nil
	default:
		return "", "", fmt.Errorf("kernel %s: %w", name, err)
	}
}

// checkUnused fails with api.ErrConflict when images or VMs use the kernel.
func (s *Service) checkUnused(ctx context.Context, name string) error {
	images, vms, err := s.store.KernelUsers(ctx, name)
	if err != nil {
		return fmt.Errorf("kernel %s: find users: %w", name, err)
	}
	if len(images) == 0 && len(vms) == 0 {
		return nil
	}
	var users []string
	if len(images) > 0 {
		users = append(users, "images "+strings.Join(images, ", "))
	}
	if len(vms) > 0 {
		users = append(users, "VMs "+strings.Join(vms, ", "))
	}
	return api.Errorf(api.ErrConflict, "kernel %s is in use by %s", name, strings.Join(users, " and "))
}

// path is the folder of kernel name.
func (s *Service) path(name string) string { return filepath.Join(s.dir, name) }

// moveAside renames a kernel's folder into a new work folder and returns
// that work folder ("" when the kernel had no folder).
func (s *Service) moveAside(name string) (string, error) {
	if _, err := os.Lstat(s.path(name)); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	aside, err := os.MkdirTemp(s.dir, tmpPrefix+"old-")
	if err != nil {
		return "", err
	}
	if err := os.Rename(s.path(name), filepath.Join(aside, name)); err != nil {
		_ = os.Remove(aside)
		return "", err
	}
	return aside, nil
}

// restore undoes moveAside.
func (s *Service) restore(aside, name string) {
	if aside == "" {
		return
	}
	if err := os.Rename(filepath.Join(aside, name), s.path(name)); err != nil {
		s.log.Error("kernel: restore folder", "kernel", name, "from", aside, "err", err)
		return
	}
	_ = os.Remove(aside)
}

// removeAside deletes a folder moveAside returned.
func (s *Service) removeAside(aside string) {
	if aside == "" {
		return
	}
	if err := os.RemoveAll(aside); err != nil {
		s.log.Warn("kernel: remove old kernel files", "path", aside, "err", err)
	}
}
