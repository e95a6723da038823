package workspace

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"banger/internal/api"
)

func TestSubmoduleContent(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	lib := filepath.Join(t.TempDir(), "lib")
	git(t, filepath.Dir(lib), "init", "-q", lib)
	write(t, filepath.Join(lib, "lib.c"), "int lib;\n", 0o644)
	git(t, lib, "add", "-A")
	git(t, lib, "commit", "-q", "-m", "lib")
	repo := makeRepo(t)
	git(t, repo, "submodule", "-q", "add", lib, "third/lib")
	git(t, repo, "commit", "-q", "-m", "add submodule")
	write(t, filepath.Join(repo, "third/lib/lib.c"), "int lib = 1; // uncommitted\n", 0o644)
	atPrepare := copyDir(t, repo)
	sum := checksum(t, repo)
	ws := filepath.Join(t.TempDir(), "proj")
	state := t.TempDir()
	if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}, "vm"); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	// The submodule arrives as its checked-out content, uncommitted edit included.
	sameTree(t, treeOf(t, ws), treeOf(t, repo, "debug.log", "build", "notes.txt"))
	write(t, filepath.Join(ws, "third/lib/lib.c"), "int lib = 2;\n", 0o644)
	write(t, filepath.Join(ws, "third/lib/new.h"), "#pragma once\n", 0o644)
	exp, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if !slices.Equal(exp.ChangedFiles, []string{"third/lib/lib.c", "third/lib/new.h"}) {
		t.Fatalf("changed files %q", exp.ChangedFiles)
	}
	if checksum(t, repo) != sum {
		t.Fatal("prepare or export modified the repository")
	}
	if _, err := Apply(ctx, atPrepare, exp.Patch); err != nil {
		t.Fatalf("apply: %v", err)
	}
	sameTree(t, treeOf(t, atPrepare, "debug.log", "build", "notes.txt"), treeOf(t, ws))
}
