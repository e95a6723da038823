package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"banger/internal/api"
)

// Export returns every change made in the guest workspace since it was
// prepared as a `git diff --binary` patch that applies to the host work tree
// as it was at prepare time, or, with p.BaseCommit, to a clean checkout of
// that commit. The guest needs no git; its .git is never read.
//
// New guest files follow git's ignore rules, as `git add -A` would: a file
// that is neither in the prepared workspace nor in the base tree is left out
// when the .gitignore files of the guest tree (as edited in the guest) or the
// repository-wide rules recorded at prepare time (core.excludesFile, then
// info/exclude) ignore it. Files of the prepared workspace or of the base
// tree are tracked: their changes and deletions are exported even when a
// rule matches them. Edits to .gitignore files are exported like any file.
func (s *Service) Export(ctx context.Context, g Guest, stateDir string, caller Caller, p api.WorkspaceExportParams) (api.WorkspaceExportResult, error) {
	var res api.WorkspaceExportResult
	guestPath := ""
	if p.GuestPath != "" {
		var err error
		if guestPath, err = cleanGuestPath(p.GuestPath); err != nil {
			return res, err
		}
	}
	rec, dir, err := loadState(stateDir, guestPath)
	if err != nil {
		return res, err
	}
	if _, err := os.Stat(rec.SourcePath); err != nil {
		return res, api.Errorf(api.ErrUnavailable, "source repository of %s: %w", rec.GuestPath, err)
	}
	git, err := newGitRunner(s.gitBin(), caller)
	if err != nil {
		return res, err
	}
	tmp, err := git.mkTemp("banger-export-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)
	st, err := newStore(git, tmp)
	if err != nil {
		return res, err
	}
	st.format = rec.ObjectFormat
	if err := copyTree(filepath.Join(dir, objectsDir), st.objects, true, git.own); err != nil {
		return res, fmt.Errorf("load workspace objects: %w", err)
	}
	for _, a := range rec.Alternates {
		st.addAlt(a)
	}
	baseTree, baseCommit := rec.PrepareTree, rec.BaseCommit
	if p.BaseCommit != "" {
		if baseCommit, err = st.resolveCommit(ctx, rec.SourcePath, p.BaseCommit); err != nil {
			return res, err
		}
		tree, err := st.line(ctx, rec.SourcePath, "", "rev-parse", baseCommit+"^{tree}")
		if err != nil {
			return res, fmt.Errorf("read tree of %s: %w", baseCommit, err)
		}
		if baseTree, err = st.flatten(ctx, rec.SourcePath, tree, false, false, 0); err != nil {
			return res, fmt.Errorf("read tree of %s: %w", baseCommit, err)
		}
	}
	files, err := s.readGuest(ctx, g, st, rec.SourcePath, rec.GuestPath)
	if err != nil {
		return res, err
	}
	tracked := func() (map[string]bool, error) {
		return st.trackedPaths(ctx, rec.SourcePath, baseTree, rec.PrepareTree)
	}
	excludes, err := os.ReadFile(filepath.Join(dir, excludeFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("read workspace ignore rules: %w", err)
	}
	ignored, err := st.dropIgnored(ctx, rec.SourcePath, files, tracked, excludes)
	if err != nil {
		return res, err
	}
	guestTree, err := st.filesTree(ctx, rec.SourcePath, files)
	if err != nil {
		return res, err
	}
	changed, err := st.changedFiles(ctx, rec.SourcePath, baseTree, guestTree)
	if err != nil {
		return res, err
	}
	var patch []byte
	if len(changed) > 0 {
		if patch, err = st.patch(ctx, rec.SourcePath, baseTree, guestTree, s.limits().MaxPatchBytes); err != nil {
			return res, err
		}
	}
	s.log.Info("workspace exported", "guest_path", rec.GuestPath, "base", baseCommit,
		"changed_files", len(changed), "patch_bytes", len(patch), "ignored_files", ignored)
	return api.WorkspaceExportResult{
		GuestPath: rec.GuestPath, BaseCommit: baseCommit, Patch: patch,
		ChangedFiles: changed, HasChanges: len(changed) > 0,
	}, nil
}

// trackedPaths returns the paths of the given trees: files there are
// exported even when an ignore rule matches them.
func (st *store) trackedPaths(ctx context.Context, dir string, trees ...string) (map[string]bool, error) {
	paths := map[string]bool{}
	for i, tree := range trees {
		if slices.Contains(trees[:i], tree) {
			continue
		}
		entries, err := st.lsTree(ctx, dir, tree)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			paths[e.path] = true
		}
	}
	return paths, nil
}

// diffArgs make git's patch output independent of the user's diff settings.
func diffArgs() []string {
	return []string{"diff-tree", "-r", "-M", "--no-color", "--no-ext-diff", "--no-textconv"}
}

// changedFiles lists the paths that differ between two trees; both sides of
// a rename are listed.
func (st *store) changedFiles(ctx context.Context, dir, from, to string) ([]string, error) {
	out, err := st.run(ctx, dir, "", nil, append(diffArgs(), "-z", "--name-status", from, to)...)
	if err != nil {
		return nil, fmt.Errorf("list changed files: %w", err)
	}
	changed := []string{}
	f := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	for i := 0; i < len(f); i++ {
		if f[i] == "" {
			continue
		}
		n := 1
		if f[i][0] == 'R' || f[i][0] == 'C' {
			n = 2
		}
		if i+n >= len(f) {
			return nil, fmt.Errorf("list changed files: truncated output")
		}
		changed = append(changed, f[i+1:i+1+n]...)
		i += n
	}
	return changed, nil
}

// patch returns the binary patch from one tree to another.
func (st *store) patch(ctx context.Context, dir, from, to string, limit int64) ([]byte, error) {
	args := append(diffArgs(), "-p", "--binary", "--full-index", "--src-prefix=a/", "--dst-prefix=b/", from, to)
	cmd := st.git.command(ctx, dir, st.env(""), args...)
	out := &capWriter{limit: limit}
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errb
	if err := cmd.Run(); err != nil {
		if out.over {
			return nil, api.Errorf(api.ErrInvalid, "patch is over the %d byte limit", limit)
		}
		return nil, fmt.Errorf("make patch: %w", gitError(args, errb.Bytes(), err))
	}
	return out.buf.Bytes(), nil
}

// capWriter buffers up to limit bytes and fails after that.
type capWriter struct {
	buf   bytes.Buffer
	limit int64
	over  bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	if int64(w.buf.Len()+len(p)) > w.limit {
		w.over = true
		return 0, errors.New("output over limit")
	}
	return w.buf.Write(p)
}
