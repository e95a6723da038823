package vmmproc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPIDFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmm.pid")
	if err := WritePIDFile(path, 4242); err != nil {
		t.Fatal(err)
	}
	if pid, err := ReadPIDFile(path); err != nil || pid != 4242 {
		t.Errorf("ReadPIDFile = %d, %v; want 4242", pid, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary file left behind (stat: %v)", err)
	}
}

func TestReadPIDFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadPIDFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing pidfile: %v, want fs.ErrNotExist", err)
	}
	for _, content := range []string{"", "hello\n", "0\n", "-5\n", "12 13\n"} {
		path := filepath.Join(dir, "vmm.pid")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if pid, err := ReadPIDFile(path); err == nil || !strings.Contains(err.Error(), "bad pidfile") {
			t.Errorf("content %q: %d, %v; want a bad pidfile error", content, pid, err)
		}
	}
}

func TestWritePIDFileFails(t *testing.T) {
	dir := t.TempDir()
	// The target is a non-empty directory, so the rename fails.
	path := filepath.Join(dir, "vmm.pid")
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WritePIDFile(path, 1); err == nil || !strings.Contains(err.Error(), "write pidfile") {
		t.Errorf("WritePIDFile over a directory: %v, want a write pidfile error", err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary file left behind (stat: %v)", err)
	}
	if err := WritePIDFile(filepath.Join(dir, "no-such-dir", "vmm.pid"), 1); err == nil {
		t.Error("WritePIDFile in a missing folder: want an error")
	}
}
