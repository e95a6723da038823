package vmmtest

import (
	"os"
	"path/filepath"
	"testing"
)

// SelfAs returns a symlink named name, in a fresh temporary folder, to the
// running test binary. Tests run it as a fake VMM (their TestMain acting on
// an environment variable): its command line then starts with a program
// called name, which is what the backends look for in /proc.
func SelfAs(t testing.TB, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	return link
}
