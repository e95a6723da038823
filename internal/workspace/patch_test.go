package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
)

func TestCheckPatchAcceptsGitOutput(t *testing.T) {
	repo := makeRepo(t)
	// Renames with spaces, quoted non-ASCII names, binary and mode changes.
	git(t, repo, "add", "-A")
	if err := os.Mkdir(filepath.Join(repo, "a dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "mv", "old.txt", "a dir/with space.txt")
	write(t, filepath.Join(repo, "ünïcödé.txt"), "changed\n", 0o644)
	write(t, filepath.Join(repo, "bin/data.bin"), binData(5, 3000), 0o755)
	write(t, filepath.Join(repo, "tab\there.txt"), "x\n", 0o644)
	git(t, repo, "add", "-A")
	patch := gitIn(t, repo, nil, "diff", "--cached", "--binary", "-M", "HEAD") + "\n"
	_, err := CheckPatch([]byte(patch))
	if err == nil || !strings.Contains(err.Error(), "control characters") {
		t.Fatalf("tab in a name not refused: %v", err)
	}
	git(t, repo, "rm", "-q", "--cached", "tab\there.txt")
	patch = gitIn(t, repo, nil, "diff", "--cached", "--binary", "-M", "HEAD") + "\n"
	paths, err := CheckPatch([]byte(patch))
	if err != nil {
		t.Fatalf("check: %v\n%s", err, patch)
	}
	for _, want := range []string{"old.txt", "a dir/with space.txt", "bin/data.bin", "ünïcödé.txt", "notes.txt"} {
		if !slices.Contains(paths, want) {
			t.Errorf("paths %q lack %q", paths, want)
		}
	}
}

func TestCheckPatchRefusesUnsafe(t *testing.T) {
	hunk := "@@ -0,0 +1 @@\n+x\n"
	for name, patch := range map[string]string{
		"dotdot":       "diff --git a/../x b/../x\nnew file mode 100644\n--- /dev/null\n+++ b/../x\n" + hunk,
		"absolute":     "diff --git a//etc/passwd b//etc/passwd\n--- a//etc/passwd\n+++ b//etc/passwd\n" + hunk,
		"git dir":      "diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n" + hunk,
		"nested git":   "diff --git a/sub/.GIT/hooks/x b/sub/.GIT/hooks/x\n--- a/sub/.GIT/hooks/x\n+++ b/sub/.GIT/hooks/x\n" + hunk,
		"control":      "diff --git \"a/x\\001y\" \"b/x\\001y\"\n--- \"a/x\\001y\"\n+++ \"b/x\\001y\"\n" + hunk,
		"newline":      "diff --git \"a/x\\ny\" \"b/x\\ny\"\n--- \"a/x\\ny\"\n+++ \"b/x\\ny\"\n" + hunk,
		"rename out":   "diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to ../../y\n",
		"plus line":    "diff --git a/x b/x\n--- a/x\n+++ b/../../etc/x\n" + hunk,
		"hidden file":  "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n--- a/.git/config\n+++ b/.git/config\n" + hunk,
		"not git":      "--- a/x\n+++ b/x\n" + hunk,
		"garbage":      "hello\n",
		"long hunk":    "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n",
		"short hunk":   "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n-a\n",
		"no prefix":    "diff --git x x\n--- x\n+++ x\n" + hunk,
		"dot":          "diff --git a/./x b/./x\n--- a/./x\n+++ b/./x\n" + hunk,
		"git tilde":    "diff --git a/GIT~1/config b/GIT~1/config\n--- a/GIT~1/config\n+++ b/GIT~1/config\n" + hunk,
		"copy git":     "diff --git a/x b/y\nsimilarity index 100%\ncopy from x\ncopy to .git/hooks/pre-commit\n",
		"bad binary":   "diff --git a/x b/x\nGIT binary patch\nfoo 3\n",
		"bad quote":    "diff --git \"a/x b/x\n",
		"binary after": "diff --git a/x b/x\nGIT binary patch\nliteral 1\nIcmZpX000310RR91\n\nliteral 0\nHcmV?d00001\n\ndiff --git a/.git/x b/.git/x\n--- a/.git/x\n+++ b/.git/x\n" + hunk,
	} {
		if _, err := CheckPatch([]byte(patch)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s: error %v is not invalid-argument", name, err)
		}
	}
}

func TestApplyRefusesUnsafe(t *testing.T) {
	ctx := context.Background()
	repo := makeRepo(t)
	sum := checksum(t, repo)
	outside := filepath.Join(filepath.Dir(repo), "outside")
	for name, patch := range map[string]string{
		"dotdot":  "diff --git a/../outside b/../outside\nnew file mode 100644\n--- /dev/null\n+++ b/../outside\n@@ -0,0 +1 @@\n+x\n",
		"git dir": "diff --git a/.git/hooks/pre-commit b/.git/hooks/pre-commit\nnew file mode 100755\n--- /dev/null\n+++ b/.git/hooks/pre-commit\n@@ -0,0 +1 @@\n+x\n",
	} {
		if _, err := Apply(ctx, repo, []byte(patch)); err == nil {
			t.Errorf("%s: applied", name)
		}
	}
	if _, err := os.Stat(outside); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a patch wrote outside the repository")
	}
	// A patch that does not apply changes nothing.
	bad := "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-nope\n+x\n" +
		"diff --git a/new.txt b/new.txt\nnew file mode 100644\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+x\n"
	if _, err := Apply(ctx, repo, []byte(bad)); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("non-applying patch: %v", err)
	}
	if checksum(t, repo) != sum {
		t.Fatal("refused patches modified the repository")
	}
}
