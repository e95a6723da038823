package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
//
// The patch is streamed to w as git writes it (never held in memory); the
// result carries everything else. Nothing is written to w when there are no
// changes.
func (s *Service) Export(ctx context.Context, g Guest, stateDir string, caller Caller, p api.WorkspaceExportParams, w io.Writer) (api.WorkspaceExportResult, error) {
	var res api.WorkspaceExportResult
	clock := newStageClock()
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
	git, err := newGitRunner(s.gitBin(), caller)
	if err != nil {
		return res, err
	}
	// Checked by the caller's git, not by a root stat of the path.
	if _, err := git.run(ctx, rec.SourcePath, nil, nil, "rev-parse", "--git-dir"); err != nil {
		return res, api.Errorf(api.ErrUnavailable, "source repository %s of %s: %w", rec.SourcePath, rec.GuestPath, err)
	}
	st, cleanup, err := openScratchStore(ctx, git, stateDir, "banger-export-")
	if err != nil {
		return res, err
	}
	defer cleanup()
	st.format = rec.ObjectFormat
	for _, a := range rec.Alternates {
		st.addAlt(a)
	}
	if err := st.loadObjects(ctx, rec.SourcePath, filepath.Join(dir, objectsDir)); err != nil {
		return res, fmt.Errorf("load workspace objects: %w", err)
	}
	clock.mark("load")
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
	base := &baseline{load: func() ([]treeEntry, error) { return st.lsTree(ctx, rec.SourcePath, rec.PrepareTree) }}
	files, err := s.readGuest(ctx, g, st, rec.SourcePath, rec.GuestPath, rec.unchanged(), base)
	if err != nil {
		return res, err
	}
	clock.mark("guest")
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
	clock.mark("tree")
	changed := []string{}
	var size int64
	if guestTree != baseTree {
		// The list of changed files and the patch are two git runs: at
		// the same time. An unchanged tree gives neither (nothing is
		// written to w).
		type list struct {
			changed []string
			err     error
		}
		listed := make(chan list, 1)
		go func() {
			c, err := st.changedFiles(ctx, rec.SourcePath, baseTree, guestTree)
			listed <- list{c, err}
		}()
		size, err = st.patch(ctx, rec.SourcePath, baseTree, guestTree, s.limits().MaxPatchBytes, w)
		l := <-listed
		if err != nil {
			return res, err
		}
		if l.err != nil {
			return res, l.err
		}
		changed = l.changed
	}
	clock.mark("diff")
	s.log.Info("workspace exported", append([]any{"guest_path", rec.GuestPath, "base", baseCommit,
		"changed_files", len(changed), "patch_bytes", size, "ignored_files", ignored}, clock.attrs...)...)
	return api.WorkspaceExportResult{
		GuestPath: rec.GuestPath, BaseCommit: baseCommit,
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

// patch streams the binary patch from one tree to another to w and returns
// its size; over limit bytes it fails.
func (st *store) patch(ctx context.Context, dir, from, to string, limit int64, w io.Writer) (int64, error) {
	args := append(diffArgs(), "-p", "--binary", "--full-index", "--src-prefix=a/", "--dst-prefix=b/", from, to)
	cmd := st.git.command(ctx, dir, st.env(""), args...)
	out := &limitWriter{w: w, limit: limit}
	errb := &capWriter{limit: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Run(); err != nil {
		if out.over {
			return out.n, api.Errorf(api.ErrInvalid, "patch is over the %d byte limit", limit)
		}
		if out.err != nil {
			return out.n, fmt.Errorf("send patch: %w", out.err)
		}
		return out.n, fmt.Errorf("make patch: %w", gitError(args, errb.buf.Bytes(), err))
	}
	return out.n, nil
}

// limitWriter passes up to limit bytes to w and fails after that.
type limitWriter struct {
	w     io.Writer
	limit int64
	n     int64
	over  bool
	err   error
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.limit {
		l.over = true
		return 0, errors.New("output over limit")
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	if err != nil {
		l.err = err
	}
	return n, err
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
