package vmmproc

import (
	"os/exec"
	"path/filepath"
)

// FindBinary resolves a VMM executable, a path or a name looked up in PATH,
// to an absolute path.
func FindBinary(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	return filepath.Abs(path)
}
