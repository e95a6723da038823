package vmmproc

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"banger/internal/api"
)

func TestPrepareRunDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "vm1")
	m := Match{Program: "fakevmm", Flag: "--sock", Path: filepath.Join(dir, "vmm.sock")}
	if err := PrepareRunDir(dir, "vmm.pid", m, "vmm.pid", "vmm.sock"); err != nil {
		t.Fatalf("PrepareRunDir of a new run dir: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("run dir not created: %v", err)
	}
	// Stale files of a VMM that is gone: a pidfile naming another program.
	for _, name := range []string{"vmm.sock", "serial.log"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "vmm.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := PrepareRunDir(dir, "vmm.pid", m, "vmm.pid", "vmm.sock"); err != nil {
		t.Fatalf("PrepareRunDir over stale files: %v", err)
	}
	for name, want := range map[string]bool{"vmm.pid": false, "vmm.sock": false, "serial.log": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", name, err == nil, want)
		}
	}
}

func TestPrepareRunDirConflict(t *testing.T) {
	dir := t.TempDir()
	pid, m := fakeVMM(t, dir)
	err := PrepareRunDir(dir, "vmm.pid", m, "vmm.pid", "vmm.sock")
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "fakevmm already running") ||
		!strings.Contains(err.Error(), strconv.Itoa(pid)) {
		t.Errorf("PrepareRunDir with a live vmm: %v, want ErrConflict naming pid %d", err, pid)
	}
	if _, err := os.Stat(filepath.Join(dir, "vmm.pid")); err != nil {
		t.Errorf("the live vmm's pidfile was touched: %v", err)
	}
}
