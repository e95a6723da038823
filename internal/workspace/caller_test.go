package workspace

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"banger/internal/api"
)

var nobody = Caller{UID: 65534, GID: 65534}

// nobodyRepo makes makeRepo's repository owned by nobody, in folders
// nobody can enter.
func nobodyRepo(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to act for another uid")
	}
	repo := makeRepo(t)
	os.Chmod(filepath.Dir(repo), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(repo)), 0o755)
	if out, err := exec.Command("chown", "-R", "65534:65534", repo).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	return repo
}

// scratchSeen records the scratch folders of every operation and checks
// them before they are removed: the daemon's is root's, 0700; nothing in
// the caller's was made by root.
func scratchSeen(t *testing.T) *int {
	var mu sync.Mutex
	n := 0
	testHookScratch = func(callerDir, daemonDir string) {
		mu.Lock()
		defer mu.Unlock()
		n++
		fi, err := os.Stat(daemonDir)
		if err != nil {
			t.Errorf("daemon scratch: %v", err)
			return
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || fi.Mode().Perm() != 0o700 {
			t.Errorf("daemon scratch %s is uid %d mode %o, want root 0700", daemonDir, st.Uid, fi.Mode().Perm())
		}
		filepath.WalkDir(callerDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			if uid := info.Sys().(*syscall.Stat_t).Uid; uid != 65534 {
				t.Errorf("%s in the caller's scratch folder is owned by uid %d", p, uid)
			}
			return nil
		})
	}
	t.Cleanup(func() { testHookScratch = nil })
	return &n
}

// Prepare and export for an unprivileged caller: git runs as the caller in
// a folder the caller made; the daemon works in its own root-only folder
// and never creates a file in the caller's.
func TestScratchFoldersAsCaller(t *testing.T) {
	repo := nobodyRepo(t)
	seen := scratchSeen(t)
	ctx := context.Background()
	s := newTestService(t)
	ws := filepath.Join(t.TempDir(), "proj")
	state := t.TempDir()
	p := api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws, IncludeUntracked: true}
	if _, err := s.Prepare(ctx, gitGuest(), state, nobody, p, "vm"); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	write(t, filepath.Join(ws, "README.md"), "edited in the guest\n", 0o644)
	write(t, filepath.Join(ws, "big.bin"), binData(3, 3<<20), 0o644) // a large blob
	write(t, filepath.Join(ws, "sub/.gitignore"), "*.tmp\n", 0o644)
	write(t, filepath.Join(ws, "sub/x.tmp"), "ignored\n", 0o644)
	exp, err := exportAll(s, ctx, gitGuest(), state, nobody, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if !strings.Contains(string(exp.Patch), "+edited in the guest") || strings.Contains(string(exp.Patch), "x.tmp") {
		t.Fatalf("patch:\n%.2000s", exp.Patch)
	}
	if *seen != 2 {
		t.Fatalf("scratch folders checked %d times, want 2", *seen)
	}
}

// The caller's git prints where the shallow file is; the daemon never reads
// that path: the caller's process does, so a symlink to a root-only file
// is refused, and a file that is not a list of commit ids is refused.
func TestShallowFileTrickRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to act for another uid")
	}
	ctx := context.Background()
	origin := makeRepo(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	repo := filepath.Join(base, "shallow")
	git(t, base, "clone", "-q", "--depth", "1", "file://"+origin, repo)
	secret := filepath.Join(base, "secret")
	os.WriteFile(secret, []byte("root-only first line\n"), 0o600)
	public := filepath.Join(base, "public")
	os.WriteFile(public, []byte("not a commit id\n"), 0o644)
	if out, err := exec.Command("chown", "-R", "65534:65534", repo).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	s := newTestService(t)
	for _, target := range []string{secret, public} {
		shallow := filepath.Join(repo, ".git", "shallow")
		os.Remove(shallow)
		if err := os.Symlink(target, shallow); err != nil {
			t.Fatal(err)
		}
		ws := filepath.Join(t.TempDir(), "proj")
		_, err := s.Prepare(ctx, gitGuest(), t.TempDir(), nobody, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}, "vm")
		if err == nil {
			t.Fatalf("shallow file linked to %s: prepared", target)
		}
		if data, _ := os.ReadFile(filepath.Join(ws, ".git", "shallow")); strings.Contains(string(data), "root-only") {
			t.Fatal("root-only content reached the guest")
		}
	}
}

// A workspace state kept by an earlier version (loose objects, no packs)
// still exports: the daemon packs its own loose files for the caller's git.
func TestExportFromLooseObjectState(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	repo := makeRepo(t)
	ws := filepath.Join(t.TempDir(), "proj")
	state := t.TempDir()
	if _, err := s.Prepare(ctx, gitGuest(), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws, IncludeUntracked: true}, "vm"); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	packs, _ := filepath.Glob(filepath.Join(state, "*", objectsDir, "pack", "*.pack"))
	if len(packs) == 0 {
		t.Fatal("prepare kept no pack")
	}
	for _, p := range packs {
		objects := filepath.Dir(filepath.Dir(p))
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("git", "-C", repo, "unpack-objects", "-q")
		cmd.Env = append(os.Environ(), "GIT_OBJECT_DIRECTORY="+objects, "GIT_ALTERNATE_OBJECT_DIRECTORIES=")
		cmd.Stdin = f
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("unpack-objects: %v: %s", err, out)
		}
		f.Close()
		os.Remove(p)
	}
	write(t, filepath.Join(ws, "README.md"), "edited\n", 0o644)
	exp, err := exportAll(s, ctx, gitGuest(), state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if !strings.Contains(string(exp.Patch), "+edited") || strings.Contains(string(exp.Patch), "notes.txt") {
		t.Fatalf("patch:\n%.3000s", exp.Patch)
	}
}
