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
// banger-modules.cpio when the kernel needs modules to boot. The source
// files are renamed: t lives in a work folder of the daemon's own, on the
// same file system (pull unpacks there, import copies there from the
// caller's descriptors).
func assemble(ctx context.Context, t tree, work string, progress func(api.ProgressEvent)) (layout, error) {
	l := layout{kernel: "vmlinuz", version: t.version, arch: t.img.arch}
	if t.img.format == "elf" {
		l.kernel = "vmlinux"
	}
	put := func(src, name string) error {
		return os.Rename(src, filepath.Join(work, name))
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
	for src, name := range map[string]string{t.systemMap: "System.map", t.kconfig: ConfigFile} {
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
	if err := os.Rename(t.modules, modDir); err != nil {
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
