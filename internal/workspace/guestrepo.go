package workspace

import (
	"context"
	"fmt"
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
		// Read as the caller (what git printed is the caller's to name)
		// and written by the caller's tar: the daemon opens neither path.
		data, err := st.git.readFile(ctx, shallow, maxShallowBytes)
		if err != nil {
			return "", fmt.Errorf("read shallow file: %w", err)
		}
		if !validShallow(data) {
			return "", api.Errorf(api.ErrInvalid, "shallow file %s is not a list of commit ids", shallow)
		}
		if err := st.git.writeFiles(ctx, dir, map[string][]byte{".git/shallow": data}); err != nil {
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

// maxShallowBytes bounds a shallow file (one commit id a line).
const maxShallowBytes = 16 << 20

// validShallow reports whether data is a list of object ids, one a line.
func validShallow(data []byte) bool {
	for line := range strings.SplitSeq(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" && len(data) == 0 {
			continue
		}
		if (len(line) != 40 && len(line) != 64) || !isHex(line) {
			return false
		}
	}
	return true
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
