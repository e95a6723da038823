// Package vmmtest holds helpers for tests that boot VMs.
package vmmtest

import (
	"os"
	"path/filepath"
	"testing"

	"banger/internal/kernel/kerneltest"
)

// Kernel returns the path of a bootable x86-64 kernel image (bzImage): the
// host's newest readable /boot/vmlinuz-*, else Debian's cloud kernel from
// kerneltest.DebianKernel, which downloads it into the test cache on first
// use. It skips the test when neither a kernel nor the tools to fetch one
// are available (or the cache is not writable), and fails it when the
// download fails.
func Kernel(t testing.TB) string {
	t.Helper()
	if k := newestKernel("/boot"); k != "" {
		return k
	}
	k := kerneltest.Vmlinuz(kerneltest.DebianKernel(t))
	if _, err := os.Stat(k); err != nil {
		t.Fatalf("Debian cloud kernel: %v", err)
	}
	return k
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
