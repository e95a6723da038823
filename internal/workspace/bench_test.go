package workspace

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	if os.Getenv("WS_BENCH_LOG") != "" {
		s.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
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

// benchBigRepo makes a repository of n files of about size bytes each.
func benchBigRepo(b *testing.B, n, size int) string {
	b.Helper()
	repo := filepath.Join(b.TempDir(), "big")
	git(b, filepath.Dir(repo), "init", "-q", repo)
	line := strings.Repeat("func return if else for range var const type ", 2)
	for i := range n {
		var sb strings.Builder
		for sb.Len() < size {
			fmt.Fprintf(&sb, "%s%d %d\n", line, i, sb.Len())
		}
		write(b, filepath.Join(repo, fmt.Sprintf("d%03d/s%02d/f%05d.txt", i%100, (i/100)%20, i)), sb.String(), 0o644)
	}
	git(b, repo, "add", "-A")
	git(b, repo, "commit", "-q", "-m", "bench")
	return repo
}

// BenchmarkPrepare2000Files prepares a workspace of 2000 files / 30 MB
// (B4's size under TCG) into a local folder, without git in the "guest".
func BenchmarkPrepare2000Files(b *testing.B) {
	ctx := context.Background()
	s := newTestService(b)
	if os.Getenv("WS_BENCH_LOG") != "" {
		s.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	repo := benchBigRepo(b, 2000, 15000)
	state := b.TempDir()
	g := noGitGuest(b)
	i := 0
	for b.Loop() {
		i++
		ws := filepath.Join(b.TempDir(), fmt.Sprintf("ws-%d", i))
		if _, err := s.Prepare(ctx, g, state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}, "vm"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExport10Of1000Files exports a workspace of 1000 files of which
// 10 were edited in the guest: the other 990 cross as headers only.
func BenchmarkExport10Of1000Files(b *testing.B) {
	ctx := context.Background()
	s := newTestService(b)
	repo := benchRepo(b, 1000)
	ws := filepath.Join(b.TempDir(), "bench")
	state := b.TempDir()
	if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}, "vm"); err != nil {
		b.Fatal(err)
	}
	editAll(b, ws, 10)
	for b.Loop() {
		exp, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
		if err != nil || len(exp.ChangedFiles) != 10 {
			b.Fatalf("export: %v (%d files)", err, len(exp.ChangedFiles))
		}
	}
}
