package agenttest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"banger/internal/agent/proto"
	"banger/internal/agent/tarstream"
)

// Local plays a guest's workspace ops (probe, extract, archive, remove) on
// this machine's files with the agent's own code, for tests of what the
// host does with them. PATH is where it looks for git.
type Local struct {
	PATH string
}

// Probe is the agent's probe op.
func (l Local) Probe(_ context.Context, dir string) (proto.Probe, error) {
	state, err := tarstream.PathState(dir)
	return proto.Probe{State: state, Git: l.git() != ""}, err
}

// Extract is the agent's extract op.
func (l Local) Extract(ctx context.Context, dir string, r io.Reader, gitRefresh bool) (proto.Extracted, error) {
	sum, err := tarstream.Replace(r, dir)
	if err != nil {
		return sum, fmt.Errorf("agent: extract: %w", err)
	}
	if git := l.git(); gitRefresh && git != "" {
		cmd := exec.CommandContext(ctx, git, "update-index", "-q", "--refresh")
		cmd.Dir, cmd.Env = dir, []string{"PATH=" + l.PATH, "HOME=/nonexistent"}
		cmd.Run()
	}
	return sum, nil
}

// Archive is the agent's archive op.
func (l Local) Archive(_ context.Context, dir string, exclude []string, unchanged *proto.Unchanged, w io.Writer) error {
	if err := tarstream.WriteChanged(w, dir, exclude, unchanged); err != nil {
		return fmt.Errorf("agent archive: %w", err)
	}
	return nil
}

// Remove is the agent's remove op.
func (l Local) Remove(_ context.Context, dir string) error {
	return os.RemoveAll(dir)
}

func (l Local) git() string {
	for _, d := range filepath.SplitList(l.PATH) {
		p := filepath.Join(d, "git")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
