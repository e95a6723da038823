package workspace

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"banger/internal/api"
)

// maxSubmoduleDepth bounds submodule recursion.
const maxSubmoduleDepth = 8

// resolveCommit resolves rev to a commit id in the repository at dir.
func (st *store) resolveCommit(ctx context.Context, dir, rev string) (string, error) {
	if rev == "" {
		rev = "HEAD"
	}
	if strings.HasPrefix(rev, "-") || strings.ContainsAny(rev, "\x00\n") {
		return "", api.Errorf(api.ErrInvalid, "invalid revision %q", rev)
	}
	id, err := st.line(ctx, dir, "", "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil || id == "" {
		return "", api.Errorf(api.ErrInvalid, "revision %q is not a commit in %s", rev, dir)
	}
	return id, nil
}

// worktreeTree writes the tree of the work tree at dir: HEAD plus changes to
// tracked files (in HEAD or in the repository's index), plus untracked,
// not-ignored files when untracked is set. Like `git add -u` / `git add -A`
// into a temporary index, but git hashes the changed files into a scratch
// object directory, so no host object is written or freshened (tree.go).
func (st *store) worktreeTree(ctx context.Context, dir string, untracked bool) (string, error) {
	index := st.newIndex()
	if _, err := st.run(ctx, dir, index, nil, "read-tree", "HEAD"); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", dir, err)
	}
	// Read only: the repository's index tells, by stat data, which files
	// may differ from HEAD; submodules are flattened later.
	changed, err := st.git.run(ctx, dir, st.repoEnv(), nil, "diff-index", "-z", "--name-only",
		"--no-renames", "--ignore-submodules=all", "HEAD", "--")
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", dir, err)
	}
	paths := changed
	if untracked {
		others, err := st.git.run(ctx, dir, st.repoEnv(), nil, "ls-files", "-z", "--others", "--exclude-standard")
		if err != nil {
			return "", fmt.Errorf("snapshot %s: %w", dir, err)
		}
		// A nested repository is listed as "dir/"; update-index adds it as
		// a gitlink, which flatten replaces by its content.
		for p := range strings.SplitSeq(string(others), "\x00") {
			if p = strings.TrimSuffix(p, "/"); p != "" {
				paths = append(append(paths, p...), 0)
			}
		}
	}
	if len(paths) > 0 {
		scratch, err := st.newScratch(ctx)
		if err != nil {
			return "", err
		}
		defer st.git.removeAll(scratch)
		if _, err := st.runScratch(ctx, dir, index, scratch, paths, "update-index", "-z", "--add", "--remove", "--stdin"); err != nil {
			return "", fmt.Errorf("snapshot %s: %w", dir, err)
		}
		if err := st.importScratch(ctx, dir, scratch); err != nil {
			return "", fmt.Errorf("snapshot %s: %w", dir, err)
		}
	}
	tree, err := st.writeIndexTree(ctx, dir, index)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", dir, err)
	}
	return tree, nil
}

// rebase moves the changes between from and to onto the tree onto and
// returns the resulting tree. git apply runs against a scratch object
// directory holding only the files the patch touches.
func (st *store) rebase(ctx context.Context, dir, from, to, onto string) (string, error) {
	patch, err := st.run(ctx, dir, "", nil, "diff-tree", "-r", "-p", "--binary", "--full-index",
		"--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/", from, to)
	if err != nil {
		return "", fmt.Errorf("diff uncommitted changes: %w", err)
	}
	names, err := st.run(ctx, dir, "", nil, "diff-tree", "-r", "-z", "--name-only", "--no-renames", from, to)
	if err != nil {
		return "", fmt.Errorf("diff uncommitted changes: %w", err)
	}
	touched := map[string]bool{}
	for p := range strings.SplitSeq(string(names), "\x00") {
		touched[p] = p != ""
	}
	base, err := st.lsTree(ctx, dir, onto)
	if err != nil {
		return "", err
	}
	var pre []string
	for _, e := range base {
		if touched[e.path] && e.typ == "blob" {
			pre = append(pre, e.oid)
		}
	}
	index := st.newIndex()
	if _, err := st.run(ctx, dir, index, nil, "read-tree", onto); err != nil {
		return "", fmt.Errorf("read base tree: %w", err)
	}
	scratch, err := st.newScratch(ctx)
	if err != nil {
		return "", err
	}
	defer st.git.removeAll(scratch)
	if err := st.copyToScratch(ctx, dir, scratch, pre); err != nil {
		return "", err
	}
	if _, err := st.runScratch(ctx, dir, index, scratch, patch, "apply", "--cached", "--binary", "-"); err != nil {
		return "", api.Errorf(api.ErrConflict, "uncommitted changes do not apply on top of the chosen base (use mode commit): %w", err)
	}
	if err := st.importScratch(ctx, dir, scratch); err != nil {
		return "", err
	}
	return st.writeIndexTree(ctx, dir, index)
}

// flatten replaces every gitlink in tree by the checked-out content of that
// submodule (its work tree in worktree mode, its HEAD in commit mode) and
// drops submodules that are not checked out.
func (st *store) flatten(ctx context.Context, dir, tree string, worktree, untracked bool, depth int) (string, error) {
	entries, err := st.lsTree(ctx, dir, tree)
	if err != nil {
		return "", err
	}
	var links []treeEntry
	for _, e := range entries {
		if e.typ == "commit" {
			links = append(links, e)
		}
	}
	if len(links) == 0 {
		return tree, nil
	}
	if depth >= maxSubmoduleDepth {
		return "", api.Errorf(api.ErrInvalid, "submodules nested deeper than %d levels in %s", maxSubmoduleDepth, dir)
	}
	index := st.newIndex()
	if _, err := st.run(ctx, dir, index, nil, "read-tree", tree); err != nil {
		return "", fmt.Errorf("read tree: %w", err)
	}
	var drop strings.Builder
	for _, l := range links {
		fmt.Fprintf(&drop, "0 %s\t%s\x00", st.zeroID(), l.path)
	}
	if _, err := st.run(ctx, dir, index, []byte(drop.String()), "update-index", "-z", "--index-info"); err != nil {
		return "", fmt.Errorf("drop submodule entries: %w", err)
	}
	for _, l := range links {
		sub, err := st.submoduleTree(ctx, filepath.Join(dir, filepath.FromSlash(l.path)), worktree, untracked, depth+1)
		if err != nil {
			return "", fmt.Errorf("submodule %s: %w", l.path, err)
		}
		if sub == "" {
			continue
		}
		if _, err := st.run(ctx, dir, index, nil, "read-tree", "--prefix="+l.path+"/", sub); err != nil {
			return "", fmt.Errorf("submodule %s: %w", l.path, err)
		}
	}
	return st.writeIndexTree(ctx, dir, index)
}

// submoduleTree returns the flattened tree of the submodule checked out at
// dir, or "" when it is not checked out.
func (st *store) submoduleTree(ctx context.Context, dir string, worktree, untracked bool, depth int) (string, error) {
	if !st.git.exists(ctx, filepath.Join(dir, ".git")) {
		return "", nil
	}
	info, err := st.openRepo(ctx, dir)
	if err != nil {
		return "", err
	}
	if filepath.Clean(info.top) != filepath.Clean(dir) {
		return "", nil
	}
	if _, err := st.line(ctx, dir, "", "rev-parse", "--verify", "--quiet", "HEAD^{commit}"); err != nil {
		return "", nil // no commit checked out
	}
	var tree string
	if worktree {
		tree, err = st.worktreeTree(ctx, dir, untracked)
	} else {
		tree, err = st.line(ctx, dir, "", "rev-parse", "HEAD^{tree}")
	}
	if err != nil {
		return "", err
	}
	return st.flatten(ctx, dir, tree, worktree, untracked, depth)
}

// stateTree computes the tree a workspace starts from: base's tree (commit
// mode) or base plus the work tree's changes (worktree mode), with
// submodules flattened.
func (st *store) stateTree(ctx context.Context, top, base string, worktree, untracked bool) (string, error) {
	baseTree, err := st.line(ctx, top, "", "rev-parse", base+"^{tree}")
	if err != nil {
		return "", fmt.Errorf("read base tree: %w", err)
	}
	tree := baseTree
	if worktree {
		head, err := st.line(ctx, top, "", "rev-parse", "--verify", "HEAD^{commit}")
		if err != nil {
			return "", fmt.Errorf("read HEAD: %w", err)
		}
		work, err := st.worktreeTree(ctx, top, untracked)
		if err != nil {
			return "", err
		}
		tree = work
		if head != base {
			headTree, err := st.line(ctx, top, "", "rev-parse", head+"^{tree}")
			if err != nil {
				return "", fmt.Errorf("read HEAD tree: %w", err)
			}
			tree = baseTree
			if headTree != work {
				if tree, err = st.rebase(ctx, top, headTree, work, baseTree); err != nil {
					return "", err
				}
			}
		}
	}
	return st.flatten(ctx, top, tree, worktree, untracked, 0)
}
