package workspace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/guest/agenttest"
)

// testGuest plays the guest agent's workspace ops on the host's files.
type testGuest = agenttest.Local

// newTestService returns a Service for tests (git must be installed).
func newTestService(t testing.TB) *Service {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	return New(nil)
}

// gitGuest has the host PATH (with git).
func gitGuest() testGuest { return testGuest{PATH: os.Getenv("PATH")} }

// noGitGuest has a PATH without git.
func noGitGuest(t testing.TB) testGuest {
	t.Helper()
	return testGuest{PATH: t.TempDir()}
}

// git runs git in dir and returns trimmed stdout.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gitIn(t, dir, nil, args...)
}

func gitIn(t testing.TB, dir string, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "protocol.file.allow=always"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

func write(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t testing.TB, target, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// binData returns n bytes of binary data that depend on seed.
func binData(seed byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return string(b)
}

// makeRepo makes a repository with two commits, binary files, a symlink, an
// executable, names with spaces and non-ASCII, and uncommitted, staged,
// untracked and ignored changes.
func makeRepo(t testing.TB) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "proj")
	git(t, filepath.Dir(repo), "init", "-q", "--initial-branch=main", repo)
	write(t, filepath.Join(repo, "README.md"), "hello\nworld\n", 0o644)
	write(t, filepath.Join(repo, "bin/data.bin"), binData(1, 3000), 0o644)
	write(t, filepath.Join(repo, "run.sh"), "#!/bin/sh\necho run\n", 0o755)
	symlink(t, "README.md", filepath.Join(repo, "link"))
	write(t, filepath.Join(repo, "dir with space/file name.txt"), "spaced\n", 0o644)
	write(t, filepath.Join(repo, "ünïcödé.txt"), "unicode\n", 0o644)
	write(t, filepath.Join(repo, ".gitignore"), "*.log\nbuild/\n", 0o644)
	write(t, filepath.Join(repo, "old.txt"), strings.Repeat("rename me\n", 20), 0o644)
	write(t, filepath.Join(repo, "del.txt"), "delete me\n", 0o644)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "first")
	// The first commit's objects go into a pack, the rest stay loose.
	git(t, repo, "repack", "-a", "-d", "-q")
	write(t, filepath.Join(repo, "README.md"), "hello\nworld\nsecond commit\n", 0o644)
	git(t, repo, "commit", "-q", "-am", "second")
	write(t, filepath.Join(repo, ".git/hooks/pre-commit"), "#!/bin/sh\nexit 0\n", 0o755)
	write(t, filepath.Join(repo, "del.txt"), "stashed change\n", 0o644)
	git(t, repo, "stash", "-q")
	// Uncommitted state.
	write(t, filepath.Join(repo, "README.md"), "hello\nworld\nsecond commit\nuncommitted\n", 0o644)
	write(t, filepath.Join(repo, "dir with space/file name.txt"), "spaced and staged\n", 0o644)
	git(t, repo, "add", "dir with space/file name.txt")
	write(t, filepath.Join(repo, "staged new.txt"), "staged, never committed\n", 0o644)
	git(t, repo, "add", "staged new.txt")
	write(t, filepath.Join(repo, "notes.txt"), "untracked\n", 0o644)
	write(t, filepath.Join(repo, "debug.log"), "ignored\n", 0o644)
	write(t, filepath.Join(repo, "build/out.o"), binData(9, 100), 0o644)
	return repo
}

// checksum hashes every path, mode, modification time, symlink target and
// file content under dir, .git included (objects and packs too: git must
// not even "freshen" an object of the host repository).
func checksum(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%v\x00%d\x00", rel, info.Mode(), info.ModTime().UnixNano())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00", target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// treeOf describes the files under dir (skipping .git and the given names):
// path -> kind, exec bit, content or link target.
func treeOf(t testing.TB, dir string, skip ...string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Name() == ".git" || slices.Contains(skip, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			files[rel] = "link:" + target
		case info.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			files[rel] = fmt.Sprintf("file:%v:%x", info.Mode()&0o111 != 0, sha256.Sum256(data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// sameTree fails the test when two file maps differ.
func sameTree(t testing.TB, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing "+p)
		} else if g != w {
			diffs = append(diffs, "differs "+p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("trees differ:\n%s", strings.Join(diffs, "\n"))
	}
}

// copyDir copies dir with cp -a.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	return dst
}

// agePast sets the modification time of everything under dir to a fixed
// time in the past, so that any later touch (git freshening an object) shows
// in checksum even within the file system's timestamp granularity.
func agePast(t testing.TB, dir string) {
	t.Helper()
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, past, past)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// requireHostFiles checks the paths under dir/.git that a host-state comparison
// must cover; the test fails when one is missing, so that checksum is known
// to look at index, HEAD, refs, stash, config, hooks, loose objects and packs.
func requireHostFiles(t testing.TB, dir string, packed bool) {
	t.Helper()
	for _, p := range []string{".git/index", ".git/HEAD", ".git/config", ".git/refs/heads", ".git/hooks/pre-commit"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("host repository lacks %s: %v", p, err)
		}
	}
	loose, _ := filepath.Glob(filepath.Join(dir, ".git/objects/??/*"))
	packs, _ := filepath.Glob(filepath.Join(dir, ".git/objects/pack/*.pack"))
	if len(loose) == 0 || (packed && len(packs) == 0) {
		t.Fatalf("host repository has %d loose objects and %d packs", len(loose), len(packs))
	}
}

// exportAll runs Export and puts the streamed patch into the result.
func exportAll(s *Service, ctx context.Context, g Guest, state string, c Caller, p api.WorkspaceExportParams) (api.WorkspaceExportResult, error) {
	var buf bytes.Buffer
	res, err := s.Export(ctx, g, state, c, p, &buf)
	res.Patch = buf.Bytes()
	return res, err
}
