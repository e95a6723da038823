package workspace

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"banger/internal/api"
)

// benchRepo makes a repository of n small files and returns it.
func benchRepo(b *testing.B, n int) string {
	b.Helper()
	repo := filepath.Join(b.TempDir(), "bench")
	git(b, filepath.Dir(repo), "init", "-q", repo)
	for i := range n {
		write(b, filepath.Join(repo, fmt.Sprintf("d%02d/f%04d.txt", i%50, i)), fmt.Sprintf("file %d\nline two\n", i), 0o644)
	}
	git(b, repo, "add", "-A")
	git(b, repo, "commit", "-q", "-m", "bench")
	return repo
}

// editAll changes every file under the first 1000 names of dir.
func editAll(b *testing.B, dir string, n int) {
	b.Helper()
	for i := range n {
		write(b, filepath.Join(dir, fmt.Sprintf("d%02d/f%04d.txt", i%50, i)), fmt.Sprintf("file %d\nline two changed\n", i), 0o644)
	}
}

// BenchmarkExport1000Files exports a workspace of 1000 files, all edited in
// the guest.
func BenchmarkExport1000Files(b *testing.B) {
	ctx := context.Background()
	s := newTestService(b)
	repo := benchRepo(b, 1000)
	ws := filepath.Join(b.TempDir(), "bench")
	state := b.TempDir()
	if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}, "vm"); err != nil {
		b.Fatal(err)
	}
	editAll(b, ws, 1000)
	for b.Loop() {
		exp, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
		if err != nil || len(exp.ChangedFiles) != 1000 {
			b.Fatalf("export: %v (%d files)", err, len(exp.ChangedFiles))
		}
	}
}

// BenchmarkHostGitDiff1000Files is the reference: `git diff --binary` of the
// same change made directly in a host work tree.
func BenchmarkHostGitDiff1000Files(b *testing.B) {
	repo := benchRepo(b, 1000)
	editAll(b, repo, 1000)
	for b.Loop() {
		out, err := exec.Command("git", "-C", repo, "diff", "--binary").Output()
		if err != nil || len(out) == 0 {
			b.Fatalf("git diff: %v", err)
		}
	}
}
