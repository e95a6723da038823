package vmmproc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRemoveFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"vmm.pid", "qmp.sock", "keep.log"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveFiles(dir, "vmm.pid", "vmm.pid.tmp", "qmp.sock"); err != nil {
		t.Fatalf("RemoveFiles: %v", err)
	}
	for name, want := range map[string]bool{"vmm.pid": false, "qmp.sock": false, "keep.log": true} {
		_, err := os.Stat(filepath.Join(dir, name))
		if exists := err == nil; exists != want {
			t.Errorf("%s exists = %v, want %v", name, exists, want)
		}
	}
	// A name that cannot be removed (a non-empty folder) is reported; the
	// others are still removed.
	if err := os.MkdirAll(filepath.Join(dir, "busy", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := RemoveFiles(dir, "busy", "keep.log")
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("RemoveFiles of a non-empty folder: %v, want an error naming it", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep.log")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("keep.log not removed after an earlier failure (stat: %v)", err)
	}
}
