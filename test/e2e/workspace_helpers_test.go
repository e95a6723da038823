package e2e

import (
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Helpers of the workspace tests: host repository state and file manifests.

// agePast sets the modification time of everything under dir to a fixed
// time in the past, so that any later touch (git freshening an object file
// or pack) shows in repoState whatever the file system's time granularity.
func agePast(t *testing.T, dir string) {
	t.Helper()
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, past, past)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// requireCovered fails unless a repoState holds the host state that must
// stay byte-identical: index, HEAD, refs, stash, config, hooks, loose
// objects, packs and the work tree.
func requireCovered(t *testing.T, dir string, state map[string]string) {
	t.Helper()
	for _, p := range []string{".git/index", ".git/HEAD", ".git/refs/heads/main", ".git/refs/stash", ".git/logs/refs/stash",
		".git/config", ".git/hooks/post-merge", ".git/info/exclude", "README.md", "src/main.go"} {
		if _, ok := state[filepath.Join(dir, p)]; !ok {
			t.Fatalf("host state does not cover %s", p)
		}
	}
	var packs, loose int
	for p := range state {
		switch {
		case strings.Contains(p, "/.git/objects/pack/pack-") && strings.HasSuffix(p, ".pack"):
			packs++
		case strings.Contains(p, "/.git/objects/") && !strings.Contains(p, "/objects/pack/") && !strings.Contains(p, "/objects/info"):
			loose++
		}
	}
	if packs == 0 || loose == 0 {
		t.Fatalf("host state covers %d packs and %d loose objects", packs, loose)
	}
}

var ignoredFiles = []string{"./debug.log", "./build/out.o"}

// guestIgnored are the files guestEdits makes that the ignore rules hide
// from export (.gitignore, info/exclude, and a rule the guest adds).
var guestIgnored = []string{"./build/guest.o", "./guest.log", "./key.secret", "./gen/out.c"}

// withoutFiles drops the manifest lines of the given paths.
func withoutFiles(lines []string, paths ...string) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(l string) bool {
		f := strings.Split(l, "\t")
		return len(f) > 1 && slices.Contains(paths, f[1])
	})
}

// repoState describes everything under dir, .git included: type, mode,
// mtime, size and a hash of the content (or link target) of every entry.
// Object files and packs are compared with their mtime too: git "freshens"
// (utime) an existing object, even in an alternate, when asked to write it
// again, and banger must never make it do so.
func repoState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		var content []byte
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			content = []byte(target)
		case info.Mode().IsRegular():
			if content, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		state[p] = fmt.Sprintf("%v %d %d %x", info.Mode(), info.ModTime().UnixNano(), info.Size(), sha256.Sum256(content))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// stateDiff lists the entries that differ between two repoStates.
func stateDiff(before, after map[string]string) []string {
	var diff []string
	for p, v := range before {
		if after[p] != v {
			diff = append(diff, fmt.Sprintf("%s: %q -> %q", p, v, after[p]))
		}
	}
	for p, v := range after {
		if _, ok := before[p]; !ok {
			diff = append(diff, fmt.Sprintf("%s: new %q", p, v))
		}
	}
	slices.Sort(diff)
	return diff
}

// hostManifest lists the files of a work tree the way guestManifestScript
// does, skipping .git folders and the given paths.
func hostManifest(t *testing.T, dir string, skip ...string) []string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "./" + filepath.ToSlash(strings.TrimPrefix(p, dir+"/"))
		if e.IsDir() && e.Name() == ".git" {
			return filepath.SkipDir
		}
		if e.IsDir() || slices.Contains(skip, rel) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			lines = append(lines, "L\t"+rel+"\t"+target)
			return err
		}
		data, err := os.ReadFile(p)
		x := "-"
		if info.Mode()&0o111 != 0 {
			x = "x"
		}
		lines = append(lines, fmt.Sprintf("F\t%s\t%s\t%x", rel, x, md5.Sum(data)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return lines
}

// guestManifestScript prints one line per file of the folder $1 (.git
// folders left out): "F path x|- md5" or "L path target". It runs in
// busybox and Debian alike.
const guestManifestScript = `cd "$1" && find . -name .git -prune -o \( -type f -o -type l \) -print | while IFS= read -r f; do
if [ -L "$f" ]; then printf 'L\t%s\t%s\n' "$f" "$(readlink "$f")"
else x=-; [ -x "$f" ] && x=x; printf 'F\t%s\t%s\t%s\n' "$f" "$x" "$(md5sum < "$f" | sed 's/ .*//')"; fi
done`

func guestManifest(t *testing.T, d *daemon, vm, dir string) []string {
	t.Helper()
	out := d.must(t, "vm", "exec", vm, "--", "sh", "-c", guestManifestScript, "sh", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	return lines
}

func sameManifest(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s differs:\n got: %q\nwant: %q", what, got, want)
	}
}

// copyRepo copies a repository (work tree and .git) with cp -a.
func copyRepo(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	return dst
}

// gitApply applies patch to the work tree at dir with plain git apply.
func gitApply(t *testing.T, dir string, patch []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "p.patch")
	os.WriteFile(f, patch, 0o644)
	hostGit(t, dir, "apply", "--whitespace=nowarn", f)
}
