package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/api"
)

// --apply refuses a symlink from the guest that points outside the
// repository, naming the path and the target, unless asked not to.
func TestApplyRefusesSymlinksOut(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	cases := []struct {
		name, link, target string
		out                bool
	}{
		{"absolute", "abs", "/etc/passwd", true},
		{"climbing", "sub/up", "../../outside", true},
		{"changed existing", "link", "/root/.ssh/id_ed25519", true},
		{"inside", "sub/in", "../README.md", false},
	}
	for _, c := range cases {
		repo := makeRepo(t)
		atPrepare := copyDir(t, repo)
		ws := filepath.Join(t.TempDir(), "proj")
		state := t.TempDir()
		if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}, "vm"); err != nil {
			t.Fatalf("prepare: %v", err)
		}
		os.MkdirAll(filepath.Join(ws, "sub"), 0o755)
		os.Remove(filepath.Join(ws, c.link))
		if err := os.Symlink(c.target, filepath.Join(ws, c.link)); err != nil {
			t.Fatal(err)
		}
		exp, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
		if err != nil {
			t.Fatalf("%s: export: %v", c.name, err)
		}
		_, err = Apply(ctx, atPrepare, exp.Patch)
		if !c.out {
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), c.link) || !strings.Contains(err.Error(), c.target) {
			t.Fatalf("%s: %v, want a refusal naming %s and %s", c.name, err, c.link, c.target)
		}
		if got, _ := os.Readlink(filepath.Join(atPrepare, c.link)); got == c.target {
			t.Fatalf("%s: refused patch planted the link", c.name)
		}
		if _, err := ApplyWith(ctx, atPrepare, exp.Patch, ApplyOptions{AllowSymlinksOut: true}); err != nil {
			t.Fatalf("%s: with AllowSymlinksOut: %v", c.name, err)
		}
		if got, _ := os.Readlink(filepath.Join(atPrepare, c.link)); got != c.target {
			t.Fatalf("%s: link is %q after an allowed apply", c.name, got)
		}
	}
}
