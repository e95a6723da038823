package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestStaticBuild checks the agent builds as a static binary: it runs as
// /init before any root filesystem (and dynamic loader) exists.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent; skipped with -short")
	}
	out := filepath.Join(t.TempDir(), "banger-agent")
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("binary has PT_INTERP: it is dynamically linked")
		}
	}
	if fi, err := os.Stat(out); err == nil {
		t.Logf("agent binary: %d bytes", fi.Size())
	}
}
