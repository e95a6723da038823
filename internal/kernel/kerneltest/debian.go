// Package kerneltest fetches a real Debian cloud kernel for tests, once per
// machine, into a cache folder shared by test runs.
package kerneltest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Meta is the package Debian's kernel metapackage points at.
const Meta = "linux-image-cloud-amd64"

// CacheDir is where test fixtures are kept: $BANGER_TEST_CACHE, else
// /var/cache/banger-test.
func CacheDir() string {
	if d := os.Getenv("BANGER_TEST_CACHE"); d != "" {
		return d
	}
	return "/var/cache/banger-test"
}

// DebianKernel returns the root of an unpacked Debian cloud kernel package
// (boot/vmlinuz-VERSION, lib/modules/VERSION with modules.dep) and VERSION.
// The first call on a machine runs apt-get download, dpkg-deb -x and depmod
// into CacheDir()/debian-kernel; later calls reuse it. It skips the test only
// when apt-get, dpkg-deb or depmod is not installed, or when the cache is
// not writable (not root and BANGER_TEST_CACHE unset).
func DebianKernel(t testing.TB) (root, version string) {
	t.Helper()
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "depmod"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to fetch a Debian kernel: %v", tool, err)
		}
	}
	dir := cacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		skipIfPermission(t, err)
		t.Fatalf("test cache: %v", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		skipIfPermission(t, err)
		t.Fatalf("test cache lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("test cache lock: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if r, v, ok := cached(dir); ok {
		return r, v
	}
	version, err = fetch(dir)
	if err != nil {
		t.Fatalf("fetch Debian kernel for tests: %v", err)
	}
	return filepath.Join(dir, "root"), version
}

// Vmlinuz is the kernel image of an unpacked Debian kernel package, as
// returned by DebianKernel.
func Vmlinuz(root, version string) string {
	return filepath.Join(root, "boot", "vmlinuz-"+version)
}

// CachedVmlinuz is the kernel image DebianKernel has already unpacked on
// this machine, or "" when there is none. It never downloads.
func CachedVmlinuz() string {
	if root, version, ok := cached(cacheDir()); ok {
		return Vmlinuz(root, version)
	}
	return ""
}

// cacheDir is the folder DebianKernel keeps its kernel in.
func cacheDir() string { return filepath.Join(CacheDir(), "debian-kernel") }

// cached returns the kernel unpacked in dir by an earlier fetch, if complete.
func cached(dir string) (root, version string, ok bool) {
	v, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil {
		return "", "", false
	}
	root, version = filepath.Join(dir, "root"), strings.TrimSpace(string(v))
	if _, err := os.Stat(filepath.Join(root, "lib/modules", version, "modules.dep")); err != nil {
		return "", "", false
	}
	return root, version, true
}

// skipIfPermission skips the test when err says the cache folder is not
// ours to write (not root, and BANGER_TEST_CACHE unset).
func skipIfPermission(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, fs.ErrPermission) {
		t.Skipf("test cache %s is not writable (needs root, or set BANGER_TEST_CACHE): %v", CacheDir(), err)
	}
}

func fetch(dir string) (string, error) {
	pkg, err := resolve()
	if err != nil {
		return "", err
	}
	version := strings.TrimSuffix(strings.TrimPrefix(pkg, "linux-image-"), "-unsigned")
	work, err := os.MkdirTemp(dir, "fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := run(work, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg); err != nil {
		return "", err
	}
	debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s: found %d .deb files", pkg, len(debs))
	}
	unpacked := filepath.Join(work, "root")
	if err := run(work, "dpkg-deb", "-x", debs[0], unpacked); err != nil {
		return "", err
	}
	if err := run(work, "depmod", "-b", unpacked, version); err != nil {
		return "", err
	}
	root := filepath.Join(dir, "root")
	if err := os.RemoveAll(root); err != nil {
		return "", err
	}
	if err := os.Rename(unpacked, root); err != nil {
		return "", err
	}
	return version, os.WriteFile(filepath.Join(dir, "version"), []byte(version+"\n"), 0o644)
}

// resolve finds the unsigned versioned package behind the metapackage.
func resolve() (string, error) {
	out, err := exec.Command("apt-cache", "show", "--no-all-versions", Meta).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache show %s: %w", Meta, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		deps, ok := strings.CutPrefix(sc.Text(), "Depends:")
		if !ok {
			continue
		}
		for _, d := range strings.Split(deps, ",") {
			f := strings.Fields(d)
			if len(f) > 0 && strings.HasPrefix(f[0], "linux-image-") {
				return strings.TrimSuffix(f[0], "-unsigned") + "-unsigned", nil
			}
		}
	}
	return "", fmt.Errorf("apt-cache show %s: no linux-image dependency", Meta)
}

func run(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
