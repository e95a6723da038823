package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/api"
)

// Import copies a kernel from a host folder into the store. The folder holds
// a vmlinux, vmlinuz or bzImage (or Debian's boot/vmlinuz-VERSION), and
// optionally an initrd and lib/modules/VERSION. The caller must be allowed
// to read the folder and every file taken from it.
func (s *Service) Import(ctx context.Context, p api.KernelImportParams) (api.KernelEntry, error) {
	if err := checkName(p.Name); err != nil {
		return api.KernelEntry{}, err
	}
	if p.FromDir == "" {
		return api.KernelEntry{}, api.Errorf(api.ErrInvalid, "import kernel %s: --from-dir is required", p.Name)
	}
	if !filepath.IsAbs(p.FromDir) {
		return api.KernelEntry{}, api.Errorf(api.ErrInvalid, "import kernel %s: %s: need an absolute path", p.Name, p.FromDir)
	}
	arch, err := normArch(p.Arch)
	if err != nil {
		return api.KernelEntry{}, err
	}
	check := func(path string) error {
		if s.authz == nil {
			return nil
		}
		if err := s.authz.CheckRead(ctx, path); err != nil {
			return api.Errorf(api.ErrPermission, "import kernel %s: %s: %w", p.Name, path, err)
		}
		return nil
	}
	if err := check(p.FromDir); err != nil {
		return api.KernelEntry{}, err
	}
	if fi, err := os.Stat(p.FromDir); err != nil || !fi.IsDir() {
		return api.KernelEntry{}, api.Errorf(api.ErrInvalid, "import kernel %s: %s is not a folder", p.Name, p.FromDir)
	}
	if _, err := s.store.GetKernel(ctx, p.Name); err == nil {
		return api.KernelEntry{}, api.Errorf(api.ErrExists, "kernel %s already exists", p.Name)
	} else if !errors.Is(err, api.ErrNotFound) {
		return api.KernelEntry{}, fmt.Errorf("import kernel %s: %w", p.Name, err)
	}
	t, err := scan(p.FromDir)
	if err != nil {
		return api.KernelEntry{}, api.Errorf(api.ErrInvalid, "import kernel %s: %w", p.Name, err)
	}
	if arch != "" && t.img.arch != "" && arch != t.img.arch {
		return api.KernelEntry{}, api.Errorf(api.ErrInvalid, "import kernel %s: --arch %s but %s is built for %s", p.Name, arch, t.kernel, t.img.arch)
	}
	work, err := s.workDir()
	if err != nil {
		return api.KernelEntry{}, err
	}
	defer os.RemoveAll(work) // emptied by a successful commit
	built := filepath.Join(work, "kernel")
	if err := os.Mkdir(built, 0o755); err != nil {
		return api.KernelEntry{}, err
	}
	l, err := assemble(ctx, t, built, false, check, func(api.ProgressEvent) {})
	if err != nil {
		if errors.Is(err, api.ErrPermission) || ctx.Err() != nil {
			return api.KernelEntry{}, err
		}
		return api.KernelEntry{}, fmt.Errorf("import kernel %s: %w", p.Name, err)
	}
	if l.arch == "" {
		l.arch = arch
	}
	e := s.entryFor(p.Name, l, p.Distro, "dir:"+p.FromDir)
	if err := s.commit(ctx, built, e, false); err != nil {
		return api.KernelEntry{}, err
	}
	s.log.Info("kernel imported", "name", e.Name, "version", e.KernelVersion, "from", p.FromDir)
	return e, nil
}

// normArch accepts Debian and Go spellings and returns uname -m's.
func normArch(a string) (string, error) {
	switch strings.ToLower(a) {
	case "":
		return "", nil
	case "x86_64", "amd64", "x86-64":
		return "x86_64", nil
	case "aarch64", "arm64":
		return "aarch64", nil
	case "riscv64":
		return "riscv64", nil
	}
	return "", api.Errorf(api.ErrInvalid, "unknown architecture %q (want x86_64 or aarch64)", a)
}
