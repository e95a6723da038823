package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildBinaries compiles banger, bangerd and banger-agent (static) from the
// module rooted at root into dir, stamping the version variables given as
// "Name=value" pairs of banger/internal/buildinfo (e.g. "Version=e2e").
func BuildBinaries(root, dir string, stamps ...string) error {
	ldflags := "-s -w"
	for _, s := range stamps {
		ldflags += " -X banger/internal/buildinfo." + s
	}
	for _, name := range []string{"banger", "bangerd", "banger-agent"} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = root
		cmd.Env = os.Environ()
		if name == "banger-agent" {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=0") // static, runs in any guest
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", name, err, out)
		}
	}
	return nil
}
