package kernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/iox"
)

// importInclude names what Import reads from the source folder: the places
// scan looks for a kernel, an initrd, System.map, config and modules.
var importInclude = []string{
	"vmlinux", "vmlinuz", "bzImage", "initrd.img", "initrd", "initramfs.img",
	"System.map", "config", "boot", "lib/modules", "usr/lib/modules",
}

// Limits on what Import copies from a source folder.
const (
	maxImportFiles = 100_000
	maxImportBytes = 8 << 30
)

// Import copies a kernel from a host folder into the store. The folder holds
// a vmlinux, vmlinuz or bzImage (or Debian's boot/vmlinuz-VERSION), and
// optionally an initrd and lib/modules/VERSION. The folder is read by a
// child running as the caller, which opens every file and hands the
// descriptors over (authz.Walk): the daemon never opens a path inside it, so
// nothing the caller cannot read, and no file swapped in during the copy,
// lands in the store. Symbolic links to files are followed with the caller's
// rights; links to folders are skipped.
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
	from := filepath.Clean(p.FromDir)
	arch, err := normArch(p.Arch)
	if err != nil {
		return api.KernelEntry{}, err
	}
	if _, err := s.store.GetKernel(ctx, p.Name); err == nil {
		return api.KernelEntry{}, api.Errorf(api.ErrExists, "kernel %s already exists", p.Name)
	} else if !errors.Is(err, api.ErrNotFound) {
		return api.KernelEntry{}, fmt.Errorf("import kernel %s: %w", p.Name, err)
	}
	work, err := s.workDir()
	if err != nil {
		return api.KernelEntry{}, err
	}
	defer os.RemoveAll(work) // emptied by a successful commit
	src := filepath.Join(work, "src")
	if err := s.copyAsCaller(ctx, from, src); err != nil {
		if errors.Is(err, api.ErrPermission) || errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrInvalid) || ctx.Err() != nil {
			return api.KernelEntry{}, fmt.Errorf("import kernel %s: %w", p.Name, err)
		}
		return api.KernelEntry{}, api.Errorf(api.ErrInvalid, "import kernel %s: %s: %v", p.Name, from, err)
	}
	t, err := scan(src)
	if err != nil {
		return api.KernelEntry{}, api.Errorf(api.ErrInvalid, "import kernel %s: %s", p.Name, strings.ReplaceAll(err.Error(), src, from))
	}
	if arch != "" && t.img.arch != "" && arch != t.img.arch {
		return api.KernelEntry{}, api.Errorf(api.ErrInvalid, "import kernel %s: --arch %s but %s is built for %s", p.Name, arch,
			strings.ReplaceAll(t.kernel, src, from), t.img.arch)
	}
	built := filepath.Join(work, "kernel")
	if err := os.Mkdir(built, 0o755); err != nil {
		return api.KernelEntry{}, err
	}
	l, err := assemble(ctx, t, built, func(api.ProgressEvent) {})
	if err != nil {
		if ctx.Err() != nil {
			return api.KernelEntry{}, err
		}
		return api.KernelEntry{}, fmt.Errorf("import kernel %s: %s", p.Name, strings.ReplaceAll(err.Error(), src, from))
	}
	if l.arch == "" {
		l.arch = arch
	}
	e := s.entryFor(p.Name, l, p.Distro, "dir:"+from)
	if err := s.commit(ctx, built, e, false, nil); err != nil {
		return api.KernelEntry{}, err
	}
	s.log.Info("kernel imported", "name", e.Name, "version", e.KernelVersion, "from", from)
	return e, nil
}

// copyAsCaller copies the parts of from that Import reads into the new
// folder dst (root's own), from descriptors the caller's child opened.
func (s *Service) copyAsCaller(ctx context.Context, from, dst string) error {
	walk := authz.Walk
	if s.authz != nil {
		walk = s.authz.Walk
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	files, total := 0, int64(0)
	return walk(ctx, from, importInclude, func(e authz.Entry) error {
		target := filepath.Join(dst, filepath.FromSlash(e.Path))
		if e.Dir {
			if e.Path == "." {
				return nil
			}
			return os.Mkdir(target, 0o755)
		}
		if files++; files > maxImportFiles {
			return api.Errorf(api.ErrInvalid, "%s: over %d files to import", from, maxImportFiles)
		}
		fi, err := e.File.Stat()
		if err != nil {
			return err
		}
		if total += fi.Size(); total > maxImportBytes {
			return api.Errorf(api.ErrInvalid, "%s: over %d bytes to import", from, int64(maxImportBytes))
		}
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, iox.ContextReader(ctx, io.LimitReader(e.File, fi.Size())))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", e.Path, err)
		}
		return nil
	})
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
