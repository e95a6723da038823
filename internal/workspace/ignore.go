package workspace

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Export leaves out new guest files that git would ignore: those matched by
// the .gitignore files of the guest tree, or by the repository-wide rules
// recorded at prepare time (the caller's core.excludesFile, then the
// repository's info/exclude, as `git status` reads them). Files of the
// prepared workspace or of the base tree are tracked and never left out.

// maxExcludeBytes bounds one repository-wide ignore file.
const maxExcludeBytes = 1 << 20

// readExcludes returns the repository-wide ignore rules of the repository
// at top, read as the caller: core.excludesFile then info/exclude, so that
// info/exclude wins as it does in git.
func (st *store) readExcludes(ctx context.Context, top string) ([]byte, error) {
	info, err := st.git.line(ctx, top, nil, "rev-parse", "--path-format=absolute", "--git-path", "info/exclude")
	if err != nil {
		return nil, fmt.Errorf("find info/exclude: %w", err)
	}
	global, err := st.git.line(ctx, top, nil, "config", "--path", "--get", "core.excludesFile")
	if err != nil || global == "" {
		if xdg := st.git.getenv("XDG_CONFIG_HOME"); xdg != "" {
			global = filepath.Join(xdg, "git", "ignore")
		} else if home := st.git.getenv("HOME"); home != "" {
			global = filepath.Join(home, ".config", "git", "ignore")
		}
	}
	var out bytes.Buffer
	for _, f := range []string{global, info} {
		if f == "" {
			continue
		}
		data, err := st.git.readFile(ctx, f, maxExcludeBytes)
		if err != nil {
			return nil, fmt.Errorf("read ignore rules: %w", err)
		}
		out.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), nil
}

// dropIgnored removes from files the untracked paths git would ignore and
// returns how many it removed. tracked lists the tracked paths; it is only
// called when there are ignore rules.
func (st *store) dropIgnored(ctx context.Context, dir string, files map[string]guestFile, tracked func() (map[string]bool, error), excludes []byte) (int, error) {
	rules := map[string][]string{} // blob id -> .gitignore paths
	for p, f := range files {
		if path.Base(p) == ".gitignore" && f.mode != "120000" {
			rules[f.oid] = append(rules[f.oid], p)
		}
	}
	if len(rules) == 0 && !hasRules(excludes) {
		return 0, nil
	}
	known, err := tracked()
	if err != nil {
		return 0, err
	}
	var candidates []string
	for p := range files {
		if !known[p] {
			candidates = append(candidates, p)
		}
	}
	if len(candidates) == 0 {
		return 0, nil
	}
	// A work tree holding only the guest's .gitignore files, and a .git
	// holding only the recorded repository-wide rules.
	wt := filepath.Join(st.tmp, "ignore-check")
	if _, err := st.git.run(ctx, st.tmp, isolated(), nil, "init", "-q", "--template=", wt); err != nil {
		return 0, fmt.Errorf("check ignored files: %w", err)
	}
	if err := st.git.mkdir(filepath.Join(wt, ".git", "info")); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(wt, ".git", "info", "exclude"), excludes, 0o644); err != nil {
		return 0, fmt.Errorf("check ignored files: %w", err)
	}
	if err := st.catToFiles(ctx, dir, wt, rules); err != nil {
		return 0, fmt.Errorf("check ignored files: %w", err)
	}
	// check-ignore takes pathspecs: a "./" prefix keeps a name starting
	// with ":" from being read as pathspec magic.
	slices.Sort(candidates)
	var stdin strings.Builder
	for _, p := range candidates {
		stdin.WriteString("./" + p + "\x00")
	}
	cmd := st.git.command(ctx, wt, isolated(), "check-ignore", "--no-index", "-z", "--stdin")
	cmd.Stdin = strings.NewReader(stdin.String())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 { // 1: nothing ignored
			return 0, fmt.Errorf("check ignored files: %w", gitError([]string{"check-ignore"}, errb.Bytes(), err))
		}
	}
	n := 0
	for p := range strings.SplitSeq(out.String(), "\x00") {
		p = strings.TrimPrefix(p, "./")
		if _, ok := files[p]; ok && !known[p] {
			delete(files, p)
			n++
		}
	}
	return n, nil
}

// catToFiles writes each blob of targets (blob id -> paths under root) to
// its paths.
func (st *store) catToFiles(ctx context.Context, dir, root string, targets map[string][]string) error {
	oids := make([]string, 0, len(targets))
	for oid := range targets {
		oids = append(oids, oid)
	}
	slices.Sort(oids)
	cmd := st.git.command(ctx, dir, st.env(""), "cat-file", "--batch")
	cmd.Stdin = strings.NewReader(strings.Join(oids, "\n") + "\n")
	var errb strings.Builder
	cmd.Stderr = &errb
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start git cat-file: %w", err)
	}
	out := bufio.NewReaderSize(pipe, 64<<10)
	for _, oid := range oids {
		var data []byte
		size, err := readBatchHeader(out, oid)
		if err == nil {
			data = make([]byte, size+1) // content and newline
			_, err = io.ReadFull(out, data)
		}
		for _, p := range targets[oid] {
			if err != nil {
				break
			}
			full := filepath.Join(root, filepath.FromSlash(p))
			if err = os.MkdirAll(filepath.Dir(full), 0o755); err == nil {
				err = os.WriteFile(full, data[:len(data)-1], 0o644)
			}
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return err
		}
	}
	if err := cmd.Wait(); err != nil {
		return gitError([]string{"cat-file"}, []byte(errb.String()), err)
	}
	return nil
}

// hasRules reports whether an ignore file holds any pattern.
func hasRules(data []byte) bool {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if line = bytes.TrimRight(line, " \t\r"); len(line) > 0 && line[0] != '#' {
			return true
		}
	}
	return false
}
