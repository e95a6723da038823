package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
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
	ruleFiles, err := st.readRules(ctx, dir, rules)
	if err != nil {
		return 0, fmt.Errorf("check ignored files: %w", err)
	}
	ruleFiles[".git/info/exclude"] = excludes
	if err := st.git.writeFiles(ctx, wt, ruleFiles); err != nil {
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

// readRules reads each blob of targets (blob id -> paths) and returns the
// files to write (path -> content).
func (st *store) readRules(ctx context.Context, dir string, targets map[string][]string) (map[string][]byte, error) {
	oids := slices.Sorted(maps.Keys(targets))
	files := map[string][]byte{}
	err := st.catBlobs(ctx, dir, st.env(""), oids, func(oid string, size int64, r io.Reader) error {
		if size > maxExcludeBytes {
			return fmt.Errorf("ignore file %s is over %d bytes", targets[oid][0], maxExcludeBytes)
		}
		data, err := io.ReadAll(r)
		for _, p := range targets[oid] {
			files[p] = data
		}
		return err
	})
	return files, err
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
