package workspace

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path"
	"slices"
	"strings"

	"banger/internal/api"
)

// ApplyOptions relax Apply's checks.
type ApplyOptions struct {
	// AllowSymlinksOut lets the patch make symlinks that point outside the
	// repository (absolute targets, or climbing out with "..").
	AllowSymlinksOut bool
}

// Apply applies an exported patch to the work tree of the git repository at
// repo with `git apply`, after checking that every path it touches stays
// inside the repository and outside .git, and that no symlink it makes
// points outside the repository. It runs in the caller's own process and
// returns a one-line summary.
func Apply(ctx context.Context, repo string, patch []byte) (string, error) {
	return ApplyWith(ctx, repo, patch, ApplyOptions{})
}

// ApplyWith is Apply with options.
func ApplyWith(ctx context.Context, repo string, patch []byte, opts ApplyOptions) (string, error) {
	changes, err := parsePatch(string(patch))
	if err != nil {
		return "", err
	}
	if len(changes) == 0 {
		return "nothing to apply", nil
	}
	if !opts.AllowSymlinksOut {
		if err := checkSymlinks(changes); err != nil {
			return "", err
		}
	}
	paths, err := CheckPatch(patch)
	if err != nil {
		return "", err
	}
	top, err := hostGit(ctx, repo, nil, "rev-parse", "--show-toplevel")
	if err != nil {
		return "", api.Errorf(api.ErrInvalid, "%s is not a git work tree: %w", repo, err)
	}
	top = strings.TrimSpace(top)
	// Cross-check with git's own reading of the patch: it must not touch a
	// path the strict parser did not see.
	numstat, err := hostGit(ctx, top, patch, "apply", "--numstat", "-z", "-")
	if err != nil {
		return "", api.Errorf(api.ErrInvalid, "read patch: %w", err)
	}
	for _, p := range numstatPaths(numstat) {
		if err := checkPatchPath(p); err != nil {
			return "", err
		}
		if !slices.Contains(paths, p) {
			return "", api.Errorf(api.ErrInvalid, "patch touches %q in a way the safety check did not parse", p)
		}
	}
	if _, err := hostGit(ctx, top, patch, "apply", "--whitespace=nowarn", "-"); err != nil {
		return "", api.Errorf(api.ErrConflict, "apply patch to %s: %w", top, err)
	}
	return summarize(top, changes), nil
}

// numstatPaths returns the paths of `git apply --numstat -z` output.
func numstatPaths(out string) []string {
	var paths []string
	f := strings.Split(out, "\x00")
	for i := 0; i < len(f); i++ {
		parts := strings.SplitN(f[i], "\t", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[2] != "" {
			paths = append(paths, parts[2])
			continue
		}
		// A rename or copy: the old and new names follow.
		if i+2 < len(f) {
			paths = append(paths, f[i+1], f[i+2])
		}
		i += 2
	}
	return paths
}

func summarize(top string, changes []fileChange) string {
	var added, deleted, renamed, modified int
	for _, c := range changes {
		switch {
		case c.added:
			added++
		case c.deleted:
			deleted++
		case c.renamed || c.copied:
			renamed++
		default:
			modified++
		}
	}
	return fmt.Sprintf("applied to %s: %d files changed (%d modified, %d added, %d deleted, %d renamed or copied)",
		top, len(changes), modified, added, deleted, renamed)
}

// hostGit runs the user's git in dir and returns its stdout.
func hostGit(ctx context.Context, dir string, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", gitError(args, errb.Bytes(), err)
	}
	return out.String(), nil
}

// checkSymlinks refuses symlinks the patch makes whose target leaves the
// repository: absolute, or climbing above the top with ".." (resolved
// lexically from the link's folder).
func checkSymlinks(changes []fileChange) error {
	for _, c := range changes {
		if c.newMode != symlinkMode || c.deleted {
			continue
		}
		if c.binary {
			return api.Errorf(api.ErrInvalid, "patch makes %q a symlink whose target it gives in binary form; cannot check it stays in the repository (pass --allow-symlinks-out to apply anyway)", c.newPath)
		}
		if symlinkLeaves(c.newPath, c.target) {
			return api.Errorf(api.ErrInvalid, "patch makes %q a symlink to %q, outside the repository (pass --allow-symlinks-out to apply anyway)", c.newPath, c.target)
		}
	}
	return nil
}

// symlinkLeaves reports whether a symlink at link (a repository path)
// pointing to target resolves outside the repository.
func symlinkLeaves(link, target string) bool {
	if target == "" || strings.HasPrefix(target, "/") {
		return true
	}
	r := path.Clean(path.Join(path.Dir(link), target))
	return r == ".." || strings.HasPrefix(r, "../")
}
