package kernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/initramfs"
)

// layout is what assemble put in a work folder, as names inside it.
type layout struct {
	kernel  string // vmlinuz or vmlinux
	initrd  string // initrd.img or ""
	modules string // lib/modules/VERSION or ""
	version string
	arch    string
	sha256  string // of the kernel image
}

// assemble builds banger's layout for the kernel in t inside work: the
// image as vmlinuz (bzImage) or vmlinux (ELF), initrd.img, System.map,
// config, lib/modules/VERSION (depmod run when modules.dep is missing) and
// banger-modules.cpio when the kernel needs modules to boot. With move the
// source files are renamed (t lives on the same file system, in a work
// folder); otherwise they are copied and check vets each source path.
func assemble(ctx context.Context, t tree, work string, move bool, check func(string) error, progress func(api.ProgressEvent)) (layout, error) {
	l := layout{kernel: "vmlinuz", version: t.version, arch: t.img.arch}
	if t.img.format == "elf" {
		l.kernel = "vmlinux"
	}
	put := func(src, name string) error {
		if move {
			return os.Rename(src, filepath.Join(work, name))
		}
		if err := check(src); err != nil {
			return err
		}
		return copyFile(ctx, src, filepath.Join(work, name), 0o644)
	}
	progress(api.ProgressEvent{Phase: "copy", Detail: "kernel image"})
	if err := put(t.kernel, l.kernel); err != nil {
		return l, fmt.Errorf("kernel image: %w", err)
	}
	sum, err := fileSHA256(filepath.Join(work, l.kernel))
	if err != nil {
		return l, err
	}
	l.sha256 = sum
	if t.initrd != "" {
		l.initrd = InitrdFile
		if err := put(t.initrd, l.initrd); err != nil {
			return l, fmt.Errorf("initrd: %w", err)
		}
	}
	for src, name := range map[string]string{t.systemMap: "System.map", t.kconfig: "config"} {
		if src != "" {
			if err := put(src, name); err != nil {
				return l, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if t.modules == "" {
		return l, nil
	}
	l.modules = filepath.Join("lib/modules", t.version)
	modDir := filepath.Join(work, l.modules)
	progress(api.ProgressEvent{Phase: "copy", Detail: "modules"})
	if err := os.MkdirAll(filepath.Dir(modDir), 0o755); err != nil {
		return l, err
	}
	if move {
		err = os.Rename(t.modules, modDir)
	} else {
		err = copyTree(ctx, t.modules, modDir, check)
	}
	if err != nil {
		return l, fmt.Errorf("modules: %w", err)
	}
	if _, err := os.Stat(filepath.Join(modDir, "modules.dep")); errors.Is(err, fs.ErrNotExist) {
		progress(api.ProgressEvent{Phase: "depmod", Detail: t.version})
		if err := runDepmod(ctx, work, t.version); err != nil {
			return l, err
		}
	}
	progress(api.ProgressEvent{Phase: "initramfs", Detail: ModulesCpio})
	if err := writeModulesCpio(modDir, t.version, filepath.Join(work, ModulesCpio)); err != nil {
		return l, err
	}
	return l, ctx.Err()
}

// runDepmod generates modules.dep for the tree rooted at root.
func runDepmod(ctx context.Context, root, version string) error {
	out, err := exec.CommandContext(ctx, "depmod", "-b", root, version).CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("depmod -b %s %s: %w: %s", root, version, err, bytes.TrimSpace(out))
	}
	return nil
}

// writeModulesCpio writes the boot modules archive, or nothing when every
// needed driver is built in.
func writeModulesCpio(modDir, version, dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	paths, err := initramfs.ModulesArchive(f, modDir, version)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || len(paths) == 0 {
		_ = os.Remove(dst)
	}
	if err != nil {
		return fmt.Errorf("build %s: %w", ModulesCpio, err)
	}
	return nil
}

func fileSHA256(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFile copies the regular file src to dst (created, not overwritten).
func copyFile(ctx context.Context, src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, ctxReader{ctx, in})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// copyTree copies the directories and regular files under src to dst.
// Symbolic links (Debian's build and source links) and special files are
// skipped: nothing outside src is read.
func copyTree(ctx context.Context, src, dst string, check func(string) error) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, r)
		switch {
		case d.IsDir():
			if err := check(p); err != nil {
				return err
			}
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			// Every folder on the way was checked; a file anyone may
			// read needs no further (costly, for other users: a helper
			// process each) check.
			if fi, err := d.Info(); err != nil || fi.Mode().Perm()&0o004 == 0 {
				if err := check(p); err != nil {
					return err
				}
			}
			return copyFile(ctx, p, target, 0o644)
		}
		return nil
	})
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
