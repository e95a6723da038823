package kernel

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"banger/internal/api"
)

// configs holds the kernel configs build entries name. microvm-6.1.config is
// Firecracker's CI guest config for x86_64 6.1 (everything built in, no
// modules).
//
//go:embed configs/*.config
var configs embed.FS

// buildPackages are installed with apt-get before a source build: the source
// package itself and what the kernel build needs.
var buildPackages = []string{"build-essential", "flex", "bison", "bc", "libelf-dev", "libssl-dev", "xz-utils"}

// buildSource builds the entry's kernel from Debian's linux-source package
// with the embedded config, inside dir: `make olddefconfig && make -jN
// vmlinux`. It takes about 30 minutes on 2 cores; progress reports output
// lines and elapsed time.
func buildSource(ctx context.Context, e catalogEntry, dir string, progress func(api.ProgressEvent)) (tree, string, error) {
	config, err := configs.ReadFile("configs/" + e.Config)
	if err != nil {
		return tree{}, "", fmt.Errorf("config %s: %w", e.Config, err)
	}
	pkg, err := aptShow(ctx, e.Package)
	if err != nil {
		return tree{}, "", err
	}
	progress(api.ProgressEvent{Phase: "install", Detail: e.Package + " " + pkg.version})
	args := append([]string{"install", "-y", "-q", "--no-install-recommends", e.Package}, buildPackages...)
	if err := command(ctx, dir, nil, "apt-get", args...); err != nil {
		return tree{}, "", fmt.Errorf("install %s: %w", e.Package, err)
	}
	tarballs, _ := filepath.Glob(filepath.Join("/usr/src", e.Package+".tar.*"))
	if len(tarballs) != 1 {
		return tree{}, "", fmt.Errorf("%s: want one /usr/src/%s.tar.*, found %d", e.Package, e.Package, len(tarballs))
	}
	progress(api.ProgressEvent{Phase: "unpack", Detail: tarballs[0]})
	if err := command(ctx, dir, nil, "tar", "-xf", tarballs[0], "-C", dir); err != nil {
		return tree{}, "", fmt.Errorf("unpack %s: %w", tarballs[0], err)
	}
	srcs, _ := filepath.Glob(filepath.Join(dir, "linux-*"))
	srcs = dirsOnly(srcs)
	if len(srcs) != 1 {
		return tree{}, "", fmt.Errorf("unpack %s: want one linux-* folder, found %d", tarballs[0], len(srcs))
	}
	src := srcs[0]
	if err := os.WriteFile(filepath.Join(src, ".config"), config, 0o644); err != nil {
		return tree{}, "", err
	}
	progress(api.ProgressEvent{Phase: "configure", Detail: "make olddefconfig"})
	if err := command(ctx, src, nil, "make", "olddefconfig"); err != nil {
		return tree{}, "", err
	}
	final, err := os.ReadFile(filepath.Join(src, ".config"))
	if err != nil {
		return tree{}, "", err
	}
	targets := []string{"vmlinux"}
	modules := bytes.Contains(final, []byte("\nCONFIG_MODULES=y\n"))
	if modules {
		targets = append(targets, "modules")
	}
	jobs := "-j" + strconv.Itoa(runtime.NumCPU())
	if err := command(ctx, src, buildProgress(progress), "make", append([]string{jobs}, targets...)...); err != nil {
		return tree{}, "", fmt.Errorf("build kernel: %w", err)
	}
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return tree{}, "", err
	}
	if err := os.Rename(filepath.Join(src, "vmlinux"), filepath.Join(root, "vmlinux")); err != nil {
		return tree{}, "", err
	}
	if modules {
		progress(api.ProgressEvent{Phase: "modules", Detail: "make modules_install"})
		if err := command(ctx, src, nil, "make", "modules_install", "INSTALL_MOD_PATH="+root, "INSTALL_MOD_STRIP=1"); err != nil {
			return tree{}, "", err
		}
		// modules_install links build and source back into the tree.
		mods, _ := filepath.Glob(filepath.Join(root, "lib/modules/*"))
		for _, m := range mods {
			_ = os.Remove(filepath.Join(m, "build"))
			_ = os.Remove(filepath.Join(m, "source"))
		}
	}
	_ = os.Rename(filepath.Join(src, ".config"), filepath.Join(root, ConfigFile))
	_ = os.Rename(filepath.Join(src, "System.map"), filepath.Join(root, "System.map"))
	if err := os.RemoveAll(src); err != nil {
		return tree{}, "", err
	}
	t, err := scan(root)
	if err != nil {
		return tree{}, "", fmt.Errorf("built kernel: %w", err)
	}
	return t, fmt.Sprintf("build:%s=%s+%s", e.Package, pkg.version, e.Config), nil
}

// buildProgress turns make's output into progress events: lines so far,
// elapsed time and the latest line, at most every two seconds.
func buildProgress(progress func(api.ProgressEvent)) func(string) {
	var mu sync.Mutex
	start := time.Now()
	last := time.Time{}
	var lines int64
	return func(l string) {
		mu.Lock()
		defer mu.Unlock()
		lines++
		if time.Since(last) < 2*time.Second {
			return
		}
		last = time.Now()
		elapsed := time.Since(start).Truncate(time.Second)
		progress(api.ProgressEvent{
			Phase:   "build",
			Detail:  fmt.Sprintf("%d lines, %s elapsed: %s", lines, elapsed, strings.TrimSpace(l)),
			Current: lines,
		})
	}
}
