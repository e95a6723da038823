package workspace

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/api"
)

func TestGuestWithoutGit(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	repo := makeRepo(t)
	atPrepare := copyDir(t, repo)
	ws := filepath.Join(t.TempDir(), "proj")
	state := t.TempDir()
	g := noGitGuest(t)
	if _, err := s.Prepare(ctx, g, state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws, IncludeUntracked: true}, "vm"); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ws, ".git")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("guest without git got a .git: %v", err)
	}
	sameTree(t, treeOf(t, ws), treeOf(t, repo, "debug.log", "build"))
	guestEdits(t, ws)
	exp, err := exportAll(s, ctx, g, state, Caller{}, api.WorkspaceExportParams{})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	// The guest made "escape" a symlink to /etc/passwd: refused unless allowed.
	if _, err := Apply(ctx, atPrepare, exp.Patch); err == nil || !strings.Contains(err.Error(), "outside the repository") {
		t.Fatalf("apply of a symlink out of the repository: %v, want a refusal", err)
	}
	if _, err := ApplyWith(ctx, atPrepare, exp.Patch, ApplyOptions{AllowSymlinksOut: true}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	sameTree(t, treeOf(t, atPrepare, "debug.log", "build"), treeOf(t, ws, "vendor"))
}

func TestGitDirChangesNotExported(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	repo := makeRepo(t)
	ws := filepath.Join(t.TempDir(), "proj")
	state := t.TempDir()
	if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}, "vm"); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	// The guest commits, rewrites its config and plants hooks and nested repositories.
	git(t, ws, "add", "-A")
	git(t, ws, "commit", "-q", "-m", "guest commit")
	write(t, filepath.Join(ws, ".git/hooks/pre-commit"), "#!/bin/sh\n", 0o755)
	write(t, filepath.Join(ws, ".git/config"), "[core]\n\thooksPath = /tmp\n", 0o644)
	write(t, filepath.Join(ws, "sub/.git/HEAD"), "ref: refs/heads/main\n", 0o644)
	write(t, filepath.Join(ws, "sub/.GIT/x"), "x\n", 0o644)
	exp, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if exp.HasChanges || len(exp.Patch) != 0 || len(exp.ChangedFiles) != 0 {
		t.Fatalf("changes inside .git were exported: %q\n%s", exp.ChangedFiles, exp.Patch)
	}
}

func TestReprepareAndConflict(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	repo := makeRepo(t)
	ws := filepath.Join(t.TempDir(), "proj")
	state := t.TempDir()
	p := api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}
	if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, p, "vm"); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	write(t, filepath.Join(ws, "leftover.txt"), "x\n", 0o644)
	// Preparing the same path again replaces the workspace.
	if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, p, "vm"); err != nil {
		t.Fatalf("prepare again: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ws, "leftover.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("re-prepare kept an old guest file")
	}
	// A foreign, non-empty guest folder is never overwritten.
	other := t.TempDir()
	write(t, filepath.Join(other, "precious"), "keep\n", 0o644)
	p.GuestPath = other
	_, err := s.Prepare(ctx, gitGuest(), state, Caller{}, p, "vm")
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("prepare over a foreign folder: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(other, "precious")); string(data) != "keep\n" {
		t.Fatal("foreign guest folder was touched")
	}
	if _, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: "/nowhere"}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("export of an unknown workspace: %v", err)
	}
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	repo := makeRepo(t)
	state := t.TempDir()
	for name, l := range map[string]Limits{
		"files":    {MaxFiles: 3},
		"per file": {MaxFileBytes: 1000},
		"total":    {MaxTotalBytes: 2000},
	} {
		s := newTestService(t)
		s.Limits = l
		ws := filepath.Join(t.TempDir(), "proj")
		_, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}, "vm")
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "limit") {
			t.Errorf("%s: prepare over the limit: %v", name, err)
		}
		if _, err := os.Stat(ws); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: failed prepare left %s behind", name, ws)
		}
	}
	// Export: the guest grows past the limits.
	s := newTestService(t)
	ws := filepath.Join(t.TempDir(), "proj")
	res, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}, "vm")
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	for i := range 5 {
		write(t, filepath.Join(ws, "many", string(rune('a'+i))), "x\n", 0o644)
	}
	s.Limits.MaxFiles = res.FileCount + 2
	_, err = exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "file limit") {
		t.Fatalf("export over the file limit: %v", err)
	}
	s.Limits = Limits{MaxPatchBytes: 100}
	_, err = exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "patch is over") {
		t.Fatalf("export over the patch limit: %v", err)
	}
}

func TestRunsAsCaller(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run git as another user")
	}
	ctx := context.Background()
	s := newTestService(t)
	nobody := Caller{UID: 65534, GID: 65534}
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	repo := makeRepo(t)
	mine := filepath.Join(base, "proj")
	if out, err := exec.Command("cp", "-a", repo, mine).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if out, err := exec.Command("chown", "-R", "65534:65534", mine).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	sum := checksum(t, mine)
	ws := filepath.Join(t.TempDir(), "proj")
	state := t.TempDir()
	if _, err := s.Prepare(ctx, gitGuest(), state, nobody, api.VMWorkspacePrepareParams{SourcePath: mine, GuestPath: ws, IncludeUntracked: true}, "vm"); err != nil {
		t.Fatalf("prepare as nobody: %v", err)
	}
	guestEdits(t, ws)
	exp, err := exportAll(s, ctx, gitGuest(), state, nobody, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil || !exp.HasChanges {
		t.Fatalf("export as nobody: %v", err)
	}
	if checksum(t, mine) != sum {
		t.Fatal("prepare or export modified the repository")
	}
	// A repository the caller cannot read is refused, though the daemon is root.
	if err := os.Chmod(repo, 0o700); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(repo); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	_, err = s.Prepare(ctx, gitGuest(), state, nobody, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: filepath.Join(t.TempDir(), "x")}, "vm")
	if err == nil {
		t.Fatal("nobody prepared a repository it cannot read")
	}
	t.Logf("refused as expected: %v", err)
}
