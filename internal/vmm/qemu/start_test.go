package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQEMUMessage(t *testing.T) {
	log := filepath.Join(t.TempDir(), LogFile)
	if got := qemuMessage(log); got != "" {
		t.Errorf("missing log: %q, want empty", got)
	}
	text := strings.Repeat("x", 2000) + "\n\nqemu-system-x86_64: -drive if=none: Could not open '/a': No such file\n  \nsecond line\n"
	if err := os.WriteFile(log, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got := qemuMessage(log)
	if !strings.HasSuffix(got, "qemu-system-x86_64: -drive if=none: Could not open '/a': No such file; second line") {
		t.Errorf("message = %q", got)
	}
	if len(got) > 1024 || strings.Contains(got, "\n") {
		t.Errorf("message not bounded to one line of at most 1 KiB: %d bytes", len(got))
	}
}
