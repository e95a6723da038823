package vmmproc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogTail(t *testing.T) {
	log := filepath.Join(t.TempDir(), "vmm.log")
	if got := LogTail(log); got != "" {
		t.Errorf("missing log: %q, want empty", got)
	}
	text := strings.Repeat("x", 2000) + "\n\nqemu-system-x86_64: -drive if=none: Could not open '/a': No such file\n  \nsecond line\n"
	if err := os.WriteFile(log, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got := LogTail(log)
	if !strings.HasSuffix(got, "qemu-system-x86_64: -drive if=none: Could not open '/a': No such file; second line") {
		t.Errorf("tail = %q", got)
	}
	if len(got) > 1024 || strings.Contains(got, "\n") {
		t.Errorf("tail not bounded to one line of at most 1 KiB: %d bytes", len(got))
	}
}
