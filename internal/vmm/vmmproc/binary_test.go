package vmmproc

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFindBinary(t *testing.T) {
	got, err := FindBinary("sh")
	if err != nil || !filepath.IsAbs(got) {
		t.Errorf("FindBinary(sh) = %q, %v; want an absolute path", got, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmm"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if got, err := FindBinary("./vmm"); err != nil || got != filepath.Join(dir, "vmm") {
		t.Errorf("FindBinary(./vmm) = %q, %v; want %s", got, err, filepath.Join(dir, "vmm"))
	}
	if _, err := FindBinary("banger-no-such-vmm"); err == nil {
		t.Error("FindBinary of a missing program: want an error")
	}
}
