package workspace

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
)

// TestExportFollowsIgnoreRules checks that export picks up new guest files
// as `git add -A` would: ignored ones are left out, tracked ones are kept
// whatever the rules say, and the guest's own .gitignore edits count.
func TestExportFollowsIgnoreRules(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	repo := makeRepo(t)
	// A tracked file that matches an ignore rule (*.log), and repository-wide
	// rules in info/exclude.
	write(t, filepath.Join(repo, "keep.log"), "tracked log\n", 0o644)
	git(t, repo, "add", "-f", "keep.log")
	write(t, filepath.Join(repo, ".git/info/exclude"), "*.secret\n", 0o644)
	ws := filepath.Join(t.TempDir(), "proj")
	state := t.TempDir()
	for _, g := range []testGuest{gitGuest(), noGitGuest(t)} {
		if _, err := s.Prepare(ctx, g, state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws, IncludeUntracked: true}, "vm"); err != nil {
			t.Fatalf("prepare: %v", err)
		}
		atPrepare := copyDir(t, repo)
		// Rules read later from the host do not count: those of prepare time do.
		write(t, filepath.Join(repo, ".git/info/exclude"), "", 0o644)

		write(t, filepath.Join(ws, "build/guest.o"), "object\n", 0o644) // build/
		write(t, filepath.Join(ws, "src/trace.log"), "log\n", 0o644)    // *.log
		write(t, filepath.Join(ws, "key.secret"), "secret\n", 0o644)    // info/exclude
		write(t, filepath.Join(ws, "keep.log"), "tracked log, edited\n", 0o644)
		write(t, filepath.Join(ws, "notes.txt"), "untracked at prepare, edited\n", 0o644)
		write(t, filepath.Join(ws, "new.txt"), "plain new file\n", 0o644)
		// The guest's .gitignore edits apply, and are exported themselves:
		// notes.txt stays exported (part of the workspace), *.tmp and a
		// nested rule hide new files, a negation brings one back.
		write(t, filepath.Join(ws, ".gitignore"), "*.log\nbuild/\n*.tmp\n!wanted.tmp\nnotes.txt\n", 0o644)
		write(t, filepath.Join(ws, "a.tmp"), "tmp\n", 0o644)
		write(t, filepath.Join(ws, "wanted.tmp"), "wanted\n", 0o644)
		write(t, filepath.Join(ws, "gen/.gitignore"), "/out/\n", 0o644)
		write(t, filepath.Join(ws, "gen/out/x.c"), "generated\n", 0o644)
		write(t, filepath.Join(ws, "gen/src/out/y.c"), "not generated\n", 0o644)

		exp, err := exportAll(s, ctx, g, state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		want := []string{".gitignore", "gen/.gitignore", "gen/src/out/y.c", "keep.log", "new.txt", "notes.txt", "wanted.tmp"}
		if got := slices.Sorted(slices.Values(exp.ChangedFiles)); !slices.Equal(got, want) {
			t.Fatalf("changed files %q, want %q", got, want)
		}
		if _, err := Apply(ctx, atPrepare, exp.Patch); err != nil {
			t.Fatalf("apply: %v", err)
		}
		ignored := []string{"build", "src/trace.log", "key.secret", "a.tmp", "gen/out", "debug.log"}
		sameTree(t, treeOf(t, atPrepare, ignored...), treeOf(t, ws, ignored...))
		for _, p := range []string{"build/guest.o", "src/trace.log", "key.secret", "a.tmp", "gen/out"} {
			if _, err := os.Lstat(filepath.Join(atPrepare, p)); err == nil {
				t.Errorf("ignored guest file %s reached the host", p)
			}
		}

		// A tracked file matching a rule is exported when deleted, too.
		if err := os.Remove(filepath.Join(ws, "keep.log")); err != nil {
			t.Fatal(err)
		}
		exp, err = exportAll(s, ctx, g, state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		if !slices.Contains(exp.ChangedFiles, "keep.log") || !strings.Contains(string(exp.Patch), "deleted file mode") {
			t.Fatalf("deletion of a tracked ignored file not exported: %q", exp.ChangedFiles)
		}
		write(t, filepath.Join(repo, ".git/info/exclude"), "*.secret\n", 0o644)
	}
}
