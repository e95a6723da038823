package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
)

// guestEdits makes every kind of change in the guest workspace at ws.
func guestEdits(t *testing.T, ws string) {
	t.Helper()
	write(t, filepath.Join(ws, "README.md"), "hello\nguest was here\n", 0o644)
	write(t, filepath.Join(ws, "new dir/new file.txt"), "brand new\n", 0o644)
	if err := os.Remove(filepath.Join(ws, "del.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ws, "moved"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(ws, "old.txt"), filepath.Join(ws, "moved/old.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(ws, "ünïcödé.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(ws, "bin/data.bin"), binData(2, 3000), 0o644)
	write(t, filepath.Join(ws, "bin/new.bin"), binData(3, 500), 0o644)
	symlink(t, "/etc/passwd", filepath.Join(ws, "escape"))
	// Changes inside .git directories are never exported.
	write(t, filepath.Join(ws, ".git/hooks/post-checkout"), "#!/bin/sh\necho pwned\n", 0o755)
	write(t, filepath.Join(ws, "vendor/.git/config"), "[core]\n", 0o644)
}

func TestRoundTripWorktree(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	repo := makeRepo(t)
	atPrepare := copyDir(t, repo)
	requireHostFiles(t, repo, true)
	agePast(t, repo)
	sum := checksum(t, repo)
	head := git(t, repo, "rev-parse", "HEAD")
	ws := filepath.Join(t.TempDir(), "guest", "proj")
	state := t.TempDir()

	res, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{
		SourcePath: repo, GuestPath: ws, IncludeUntracked: true, Branch: "agent/work",
	}, "vm1")
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if got := checksum(t, repo); got != sum {
		t.Fatal("prepare modified the host repository")
	}
	if res.BaseCommit != head || res.Mode != ModeWorktree || res.GuestPath != ws || res.Branch != "agent/work" {
		t.Fatalf("unexpected result %+v", res)
	}
	// The guest holds the host's work tree minus ignored files.
	want := treeOf(t, repo, "debug.log", "build")
	sameTree(t, treeOf(t, ws), want)
	if res.FileCount != len(want) {
		t.Fatalf("file count %d, want %d", res.FileCount, len(want))
	}
	// The guest repository has the history, the branch, and shows the
	// uncommitted changes as changes.
	if got := git(t, ws, "rev-parse", "--abbrev-ref", "HEAD"); got != "agent/work" {
		t.Fatalf("guest branch %q", got)
	}
	if got := git(t, ws, "rev-list", "--count", "HEAD"); got != "2" {
		t.Fatalf("guest history has %s commits", got)
	}
	status := git(t, ws, "status", "--porcelain")
	for _, want := range []string{" M README.md\n", ` M "dir with space/file name.txt"`, "?? notes.txt"} {
		if !strings.Contains(" "+status+"\n", want) {
			t.Fatalf("guest status lacks %q:\n%s", want, status)
		}
	}

	guestEdits(t, ws)
	exp, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if got := checksum(t, repo); got != sum {
		t.Fatal("export modified the host repository")
	}
	if !exp.HasChanges || exp.BaseCommit != head {
		t.Fatalf("unexpected export %+v", exp)
	}
	for _, p := range []string{"README.md", "del.txt", "old.txt", "moved/old.txt", "escape", "bin/data.bin", "new dir/new file.txt", "ünïcödé.txt"} {
		if !slices.Contains(exp.ChangedFiles, p) {
			t.Errorf("changed files lack %q: %q", p, exp.ChangedFiles)
		}
	}
	for _, p := range exp.ChangedFiles {
		if strings.Contains(p, ".git/") || strings.HasPrefix(p, "notes") || p == "dir with space/file name.txt" {
			t.Errorf("changed files hold %q, which the guest did not change", p)
		}
	}
	if !strings.Contains(string(exp.Patch), "rename from old.txt") {
		t.Errorf("rename not detected in patch:\n%s", exp.Patch)
	}

	// The guest made "escape" a symlink to /etc/passwd: refused unless allowed.
	if _, err := Apply(ctx, atPrepare, exp.Patch); err == nil || !strings.Contains(err.Error(), "outside the repository") {
		t.Fatalf("apply of a symlink out of the repository: %v, want a refusal", err)
	}
	summary, err := ApplyWith(ctx, atPrepare, exp.Patch, ApplyOptions{AllowSymlinksOut: true})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if !strings.Contains(summary, "renamed") {
		t.Errorf("summary %q", summary)
	}
	sameTree(t, treeOf(t, atPrepare, "debug.log", "build"), treeOf(t, ws, "vendor"))
	if target, err := os.Readlink(filepath.Join(atPrepare, "escape")); err != nil || target != "/etc/passwd" {
		t.Fatalf("escape is not a symlink to /etc/passwd: %q %v", target, err)
	}

	// Against the first commit: applies to a clean checkout of it.
	exp2, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{BaseCommit: "HEAD~1"})
	if err != nil {
		t.Fatalf("export against HEAD~1: %v", err)
	}
	first := git(t, repo, "rev-parse", "HEAD~1")
	if exp2.BaseCommit != first {
		t.Fatalf("base %s, want %s", exp2.BaseCommit, first)
	}
	clean := copyDir(t, repo)
	git(t, clean, "checkout", "-q", "-f", first)
	git(t, clean, "clean", "-q", "-fdx")
	if _, err := ApplyWith(ctx, clean, exp2.Patch, ApplyOptions{AllowSymlinksOut: true}); err != nil {
		t.Fatalf("apply against HEAD~1: %v", err)
	}
	sameTree(t, treeOf(t, clean), treeOf(t, ws, "vendor"))
	if got := checksum(t, repo); got != sum {
		t.Fatal("export modified the host repository")
	}
}

func TestModes(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	repo := makeRepo(t)
	agePast(t, repo)
	sum := checksum(t, repo)
	state := t.TempDir()
	guestRoot := t.TempDir()

	// Commit mode: exactly HEAD.
	ws := filepath.Join(guestRoot, "commit")
	if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws, Mode: ModeCommit}, "vm"); err != nil {
		t.Fatalf("prepare commit: %v", err)
	}
	head := copyDir(t, repo)
	git(t, head, "reset", "-q", "--hard")
	git(t, head, "clean", "-q", "-fdx")
	sameTree(t, treeOf(t, ws), treeOf(t, head))
	if git(t, ws, "status", "--porcelain") != "" {
		t.Fatal("guest of a commit-mode workspace is not clean")
	}
	exp, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil || exp.HasChanges || len(exp.Patch) != 0 {
		t.Fatalf("untouched workspace exported changes: %v %+v", err, exp)
	}

	// Worktree mode without untracked files: files staged in the host index
	// are tracked, so they come along.
	ws2 := filepath.Join(guestRoot, "worktree")
	if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws2}, "vm"); err != nil {
		t.Fatalf("prepare worktree: %v", err)
	}
	sameTree(t, treeOf(t, ws2), treeOf(t, repo, "debug.log", "build", "notes.txt"))

	// Two workspaces: export needs a guest path.
	if _, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{}); err == nil {
		t.Fatal("export without guest path picked one of two workspaces")
	}

	// Commit mode from an older commit.
	ws3 := filepath.Join(guestRoot, "old")
	res, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws3, Mode: ModeCommit, From: "HEAD~1"}, "vm")
	if err != nil {
		t.Fatalf("prepare from HEAD~1: %v", err)
	}
	if res.BaseCommit != git(t, repo, "rev-parse", "HEAD~1") {
		t.Fatalf("base %s", res.BaseCommit)
	}
	if data, _ := os.ReadFile(filepath.Join(ws3, "README.md")); string(data) != "hello\nworld\n" {
		t.Fatalf("README at HEAD~1 is %q", data)
	}

	// Worktree mode from an older commit: the uncommitted changes move onto
	// it, or the prepare fails clearly when they do not apply.
	_, err = s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: filepath.Join(guestRoot, "c"), From: "HEAD~1"}, "vm")
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("conflicting uncommitted changes: %v", err)
	}
	other := copyDir(t, repo)
	git(t, other, "checkout", "README.md")
	// The rebased changes include a file identical to one of the host's
	// objects: git must not be asked to write (freshen) it.
	write(t, filepath.Join(other, "del.txt"), "stashed change\n", 0o644)
	agePast(t, other)
	otherSum := checksum(t, other)
	ws4 := filepath.Join(guestRoot, "rebased")
	if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: other, GuestPath: ws4, From: "HEAD~1"}, "vm"); err != nil {
		t.Fatalf("prepare worktree from HEAD~1: %v", err)
	}
	if checksum(t, other) != otherSum {
		t.Fatal("prepare from an older commit modified the host repository")
	}
	if data, _ := os.ReadFile(filepath.Join(ws4, "del.txt")); string(data) != "stashed change\n" {
		t.Fatalf("del.txt is %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(ws4, "README.md")); string(data) != "hello\nworld\n" {
		t.Fatalf("README is %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(ws4, "dir with space/file name.txt")); string(data) != "spaced and staged\n" {
		t.Fatalf("uncommitted change not carried: %q", data)
	}

	if checksum(t, repo) != sum {
		t.Fatal("prepare or export modified the host repository")
	}

	// Bad input gets a clear error of the right kind.
	for name, tc := range map[string]struct {
		p    api.VMWorkspacePrepareParams
		kind error
	}{
		"mode":      {api.VMWorkspacePrepareParams{SourcePath: repo, Mode: "copy"}, api.ErrInvalid},
		"relative":  {api.VMWorkspacePrepareParams{SourcePath: "proj"}, api.ErrInvalid},
		"untracked": {api.VMWorkspacePrepareParams{SourcePath: repo, Mode: ModeCommit, IncludeUntracked: true}, api.ErrInvalid},
		"from":      {api.VMWorkspacePrepareParams{SourcePath: repo, From: "--upload-pack=x"}, api.ErrInvalid},
		"no commit": {api.VMWorkspacePrepareParams{SourcePath: repo, From: "nosuchbranch"}, api.ErrInvalid},
		"branch":    {api.VMWorkspacePrepareParams{SourcePath: repo, Branch: "bad..name"}, api.ErrInvalid},
		"not repo":  {api.VMWorkspacePrepareParams{SourcePath: t.TempDir()}, api.ErrInvalid},
		"guest /":   {api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: "/"}, api.ErrInvalid},
		"existing":  {api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: t.TempDir() + "/.."}, api.ErrConflict},
	} {
		_, err := s.Prepare(ctx, gitGuest(), state, Caller{}, tc.p, "vm")
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: prepare %+v: got %v, want %v", name, tc.p, err, tc.kind)
		}
	}
}
