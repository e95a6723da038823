// Package vmmtest holds helpers for tests that boot VMs.
package vmmtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// DefaultCacheDir keeps downloads between test runs when BANGER_TEST_CACHE is unset.
const DefaultCacheDir = "/var/cache/banger-test"

// CacheDir is $BANGER_TEST_CACHE, or DefaultCacheDir.
func CacheDir() string {
	if d := os.Getenv("BANGER_TEST_CACHE"); d != "" {
		return d
	}
	return DefaultCacheDir
}

// Kernel returns the path of a bootable x86-64 kernel image (bzImage): the
// host's newest readable /boot/vmlinuz-*, else Debian's cloud kernel, which
// is fetched with apt-get on first use and unpacked into CacheDir(). It skips
// the test when neither a kernel nor apt-get is available, and fails it when
// the download fails.
func Kernel(t testing.TB) string {
	t.Helper()
	if k := newestKernel("/boot"); k != "" {
		return k
	}
	dir := filepath.Join(CacheDir(), "debian-cloud-kernel")
	if k := newestKernel(filepath.Join(dir, "boot")); k != "" {
		return k
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("no kernel in /boot and no apt-get to download Debian's cloud kernel")
	}
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		t.Skipf("no kernel in /boot and test cache unusable (needs root or BANGER_TEST_CACHE): %v", err)
	}
	if err := fetchDebianKernel(t, dir); err != nil {
		t.Fatalf("download Debian cloud kernel: %v", err)
	}
	k := newestKernel(filepath.Join(dir, "boot"))
	if k == "" {
		t.Fatalf("download Debian cloud kernel: no vmlinuz in %s", dir)
	}
	return k
}

// fetchDebianKernel downloads the package linux-image-cloud-amd64 points at
// and unpacks it to dir (atomically: concurrent test binaries may race).
func fetchDebianKernel(t testing.TB, dir string) error {
	pkg, err := cloudKernelPackage()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(CacheDir(), "kernel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dl := exec.Command("apt-get", "download", pkg)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %w: %s", pkg, err, bytes.TrimSpace(out))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: got %d .deb files", pkg, len(debs))
	}
	root := filepath.Join(tmp, "root")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %w: %s", debs[0], err, bytes.TrimSpace(out))
	}
	if err := os.Rename(root, dir); err != nil && newestKernel(filepath.Join(dir, "boot")) == "" {
		return err
	}
	t.Logf("unpacked %s into %s", pkg, dir)
	return nil
}

// cloudKernelPackage resolves the linux-image-cloud-amd64 metapackage to the
// versioned image package it depends on.
func cloudKernelPackage() (string, error) {
	out, err := exec.Command("apt-cache", "depends", "linux-image-cloud-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-cloud-amd64: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		dep, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: ")
		if ok && strings.HasPrefix(dep, "linux-image-") {
			return dep, nil
		}
	}
	return "", errors.New("linux-image-cloud-amd64 depends on no linux-image package")
}

// newestKernel is the last (by name) readable vmlinuz-* in dir, or "".
func newestKernel(dir string) string {
	ks, _ := filepath.Glob(filepath.Join(dir, "vmlinuz-*"))
	for i := len(ks) - 1; i >= 0; i-- {
		if f, err := os.Open(ks[i]); err == nil {
			f.Close()
			return ks[i]
		}
	}
	return ""
}
