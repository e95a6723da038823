package workspace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/api"
)

// checkBranch validates a branch name with git's own rules.
func (g *gitRunner) checkBranch(ctx context.Context, branch string) error {
	if strings.HasPrefix(branch, "-") {
		return api.Errorf(api.ErrInvalid, "invalid branch name %q", branch)
	}
	if _, err := g.run(ctx, "/", isolated(), nil, "check-ref-format", "--branch", branch); err != nil {
		return api.Errorf(api.ErrInvalid, "invalid branch name %q", branch)
	}
	return nil
}

// guestRepo builds a fresh repository holding base's history, with HEAD at
// base (on branch when set) and its index equal to base's tree, and returns
// its .git directory. The source repository is only read, by pack-objects.
func (st *store) guestRepo(ctx context.Context, src repoInfo, base, branch string) (string, error) {
	dir := filepath.Join(st.tmp, "guest-repo")
	env := isolated()
	if _, err := st.git.run(ctx, st.tmp, env, nil, "init", "-q", "--template=",
		"--initial-branch=main", "--object-format="+src.format, dir); err != nil {
		return "", fmt.Errorf("init guest repository: %w", err)
	}
	if err := st.copyHistory(ctx, src, base, dir); err != nil {
		return "", err
	}
	if src.shallow {
		shallow, err := st.git.line(ctx, src.top, nil, "rev-parse", "--path-format=absolute", "--git-path", "shallow")
		if err != nil {
			return "", fmt.Errorf("find shallow file: %w", err)
		}
		data, err := os.ReadFile(shallow)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("read shallow file: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".git", "shallow"), data, 0o644); err != nil {
			return "", fmt.Errorf("write shallow file: %w", err)
		}
	}
	steps := [][]string{{"update-ref", "--no-deref", "HEAD", base}}
	if branch != "" {
		steps = [][]string{
			{"update-ref", "refs/heads/" + branch, base},
			{"symbolic-ref", "HEAD", "refs/heads/" + branch},
		}
	}
	steps = append(steps, []string{"read-tree", base})
	for _, args := range steps {
		if _, err := st.git.run(ctx, dir, env, nil, args...); err != nil {
			return "", fmt.Errorf("set up guest repository: %w", err)
		}
	}
	return filepath.Join(dir, ".git"), nil
}

// copyHistory streams every object reachable from base out of the source
// repository (pack-objects --stdout, read only) into the repository at dir.
func (st *store) copyHistory(ctx context.Context, src repoInfo, base, dir string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pack := st.git.command(ctx, src.top, st.env(""), "pack-objects", "--revs", "--stdout", "--delta-base-offset", "-q")
	pack.Stdin = strings.NewReader(base + "\n")
	var packErr, indexErr strings.Builder
	pack.Stderr = &packErr
	out, err := pack.StdoutPipe()
	if err != nil {
		return err
	}
	index := st.git.command(ctx, dir, isolated(), "index-pack", "--stdin")
	index.Stdin = out
	index.Stderr = &indexErr
	if err := pack.Start(); err != nil {
		return fmt.Errorf("copy history: start pack-objects: %w", err)
	}
	if err := index.Run(); err != nil {
		cancel()
		pack.Wait()
		return fmt.Errorf("copy history: %w", gitError([]string{"index-pack"}, []byte(indexErr.String()), err))
	}
	if err := pack.Wait(); err != nil {
		return fmt.Errorf("copy history: %w", gitError([]string{"pack-objects"}, []byte(packErr.String()), err))
	}
	return nil
}
