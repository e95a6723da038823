package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/model"
)

// hostGit runs git in dir with no user or system configuration.
func hostGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=T", "-c", "user.email=t@example.com"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// writeFiles writes files (path -> content) under dir; a content starting
// with "->" makes a symlink to the rest.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.Remove(full)
		var err error
		if target, ok := strings.CutPrefix(c, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(c), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return string(b)
}

// testRepo makes a repository with three commits, a stash, staged and
// unstaged changes, an untracked file and ignored files. Its name has a
// space and a non-ASCII letter.
func testRepo(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "wörk repo")
	os.Mkdir(dir, 0o755)
	hostGit(t, dir, "init", "-q", "--initial-branch=main")
	long := strings.Repeat("a line that makes renames detectable\n", 40)
	writeFiles(t, dir, map[string]string{
		"README.md": "# project\n", "src/main.go": "package main\n\nfunc main() {}\n",
		"docs/with space.txt": "spaces\n", "données/é.txt": "accents\n", "bin/blob.bin": randomText(4096),
		"script.sh": "#!/bin/sh\necho hi\n", "link": "->README.md", "dir-link": "->src", ".gitignore": "*.log\nbuild/\n",
	})
	os.Chmod(filepath.Join(dir, "script.sh"), 0o755)
	hostGit(t, dir, "add", "-A")
	hostGit(t, dir, "commit", "-q", "-m", "one")
	writeFiles(t, dir, map[string]string{"README.md": "# project\n\nsecond\n", "to delete.txt": long, "rename me.txt": "rename\n" + long})
	hostGit(t, dir, "add", "-A")
	hostGit(t, dir, "commit", "-q", "-m", "two")
	// The objects so far go into a pack; later ones stay loose.
	hostGit(t, dir, "repack", "-a", "-d", "-q")
	writeFiles(t, dir, map[string]string{"src/util.go": "package main\n", "bin/blob.bin": randomText(4096)})
	hostGit(t, dir, "add", "-A")
	hostGit(t, dir, "commit", "-q", "-m", "three")
	writeFiles(t, dir, map[string]string{"docs/with space.txt": "stashed change\n"})
	hostGit(t, dir, "stash", "-q")
	writeFiles(t, dir, map[string]string{"src/main.go": "package main\n\nfunc main() { println(1) }\n"})
	hostGit(t, dir, "add", "src/main.go")
	writeFiles(t, dir, map[string]string{
		"README.md": "# project\n\nsecond\nuncommitted host line\n", "notes/untracked file.txt": "untracked\n",
		"debug.log": "ignored\n", "build/out.o": "ignored\n",
	})
	writeFiles(t, dir, map[string]string{".git/hooks/post-merge": "#!/bin/sh\nexit 0\n", ".git/info/exclude": "*.secret\n"})
	agePast(t, dir)
	return dir
}

// guestEdits changes the workspace at $1 in every way a patch can carry.
const guestEdits = `set -e; cd "$1"
echo "guest line" >> README.md
mkdir -p "new dir" && printf 'new ✓\n' > "new dir/new file ✓.txt"
rm "to delete.txt"
mv "rename me.txt" "renamed é.txt"
chmod +x src/main.go; chmod -x script.sh
dd if=/dev/urandom of=bin/blob.bin bs=512 count=1 seek=2 conv=notrunc 2>/dev/null
head -c 3000 /dev/urandom > bin/new.bin
ln -sfn src/main.go link
echo "edited in guest" >> "notes/untracked file.txt"
mkdir -p build gen && echo obj > build/guest.o && echo log > guest.log && echo key > key.secret
echo '/out.c' > gen/.gitignore && echo gen > gen/out.c && echo src > gen/in.c
`

// guestAttacks plants what must never reach the host as-is.
const guestAttacks = `set -e; cd "$1"
ln -s /etc/passwd escape-link
ln -s ../../../../etc/shadow rel-escape
mkdir -p .git/hooks && printf '#!/bin/sh\necho PWNED-HOOK\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit
mkdir -p vendor/.git/hooks && echo PWNED-NESTED > vendor/.git/hooks/post-checkout && echo kept > vendor/kept.txt
`

func prepare(t *testing.T, d *daemon, args ...string) model.WorkspacePrepareResult {
	t.Helper()
	var res model.WorkspacePrepareResult
	d.mustJSON(t, &res, append([]string{"vm", "workspace", "prepare"}, args...)...)
	return res
}

func export(t *testing.T, d *daemon, args ...string) api.WorkspaceExportResult {
	t.Helper()
	var res api.WorkspaceExportResult
	d.mustJSON(t, &res, append([]string{"vm", "workspace", "export"}, args...)...)
	return res
}

func TestWorkspaceRoundTrip(t *testing.T) {
	d := sharedDaemon(t)
	img := debianImage(t, d)
	const vm = "wsdeb"
	d.must(t, "vm", "create", "--name", vm, "--image", img, "--memory", "512", "--vcpus", "2")
	defer d.run("vm", "delete", "--force", vm)
	repo := testRepo(t)
	atPrepare := copyRepo(t, repo) // the host's prepare-time state
	before := repoState(t, repo)
	requireCovered(t, repo, before)
	checkHost := func(when string) {
		t.Helper()
		if diff := stateDiff(before, repoState(t, repo)); len(diff) > 0 {
			t.Fatalf("host repository changed by %s:\n%s", when, strings.Join(diff, "\n"))
		}
	}
	head, parent := hostGit(t, repo, "rev-parse", "HEAD"), hostGit(t, repo, "rev-parse", "HEAD~1")

	ws := prepare(t, d, vm, repo, "--include-untracked", "--branch", "agent-work")
	checkHost("prepare")
	gp := "/root/wörk repo"
	if ws.GuestPath != gp || ws.BaseCommit != head || ws.Branch != "agent-work" || ws.Mode != "worktree" || ws.FileCount != 13 || ws.Bytes <= 4096 {
		t.Fatalf("prepare result: %+v", ws)
	}
	sameManifest(t, "guest after prepare", guestManifest(t, d, vm, gp), hostManifest(t, repo, ignoredFiles...))
	gitInfo := d.must(t, "vm", "exec", vm, "--", "sh", "-c", `cd "$1" && git rev-list --count HEAD && git rev-parse HEAD && git branch --show-current && git status --porcelain`, "sh", gp)
	// The guest index holds the base commit: the host's changes show as
	// unstaged, the untracked file as untracked.
	for _, want := range []string{"3\n" + head + "\nagent-work\n", " M README.md\n", " M src/main.go\n", "?? notes/\n"} {
		if !strings.Contains(gitInfo, want) {
			t.Errorf("guest git state lacks %q:\n%s", want, gitInfo)
		}
	}

	d.must(t, "vm", "ssh", vm, "--", "sh", "-c", shellQuoteArg(guestEdits), "sh", shellQuoteArg(gp))
	d.must(t, "vm", "exec", vm, "--", "sh", "-c", guestAttacks, "sh", gp)
	guestTree := withoutFiles(guestManifest(t, d, vm, gp), guestIgnored...)

	res := export(t, d, vm)
	checkHost("export")
	patch := string(res.Patch)
	if !res.HasChanges || res.BaseCommit != head || res.GuestPath != gp {
		t.Fatalf("export: %+v", res)
	}
	wantChanged := []string{"README.md", "new dir/new file ✓.txt", "to delete.txt", "rename me.txt", "renamed é.txt", "src/main.go",
		"script.sh", "bin/blob.bin", "bin/new.bin", "link", "notes/untracked file.txt", "escape-link", "rel-escape", "vendor/kept.txt",
		"gen/.gitignore", "gen/in.c"}
	if got := slices.Sorted(slices.Values(res.ChangedFiles)); !slices.Equal(got, slices.Sorted(slices.Values(wantChanged))) {
		t.Errorf("changed files %q, want %q", got, wantChanged)
	}
	for _, bad := range []string{".git/", "PWNED", "root:x:0:0"} {
		if strings.Contains(patch, bad) {
			t.Errorf("patch contains %q:\n%s", bad, patch)
		}
	}
	for _, want := range []string{"rename from rename me.txt", "new file mode 120000", "GIT binary patch", "old mode 100755\nnew mode 100644"} {
		if !strings.Contains(patch, want) {
			t.Errorf("patch lacks %q", want)
		}
	}
	out := filepath.Join(t.TempDir(), "out.patch")
	d.must(t, "vm", "workspace", "export", vm, "-o", out)
	if data, _ := os.ReadFile(out); !bytes.Equal(data, res.Patch) {
		t.Errorf("export -o wrote a different patch")
	}

	t.Run("git apply at the prepare-time state", func(t *testing.T) {
		dir := copyRepo(t, atPrepare)
		gitApply(t, dir, res.Patch)
		sameManifest(t, "host after git apply", hostManifest(t, dir, ignoredFiles...), guestTree)
		if target, err := os.Readlink(filepath.Join(dir, "escape-link")); err != nil || target != "/etc/passwd" {
			t.Errorf("escape-link is not a symlink to /etc/passwd: %q %v", target, err)
		}
		if _, err := os.Stat(filepath.Join(dir, ".git/hooks/pre-commit")); err == nil {
			t.Errorf("the guest's hook reached the host")
		}
	})
	t.Run("base commit on a clean checkout", func(t *testing.T) {
		res := export(t, d, vm, "--base-commit", "HEAD~1")
		checkHost("export --base-commit")
		if res.BaseCommit != parent {
			t.Fatalf("base commit %s, want %s", res.BaseCommit, parent)
		}
		dir := filepath.Join(t.TempDir(), "clean")
		hostGit(t, filepath.Dir(dir), "clone", "-q", "--no-checkout", repo, dir)
		hostGit(t, dir, "checkout", "-q", parent)
		gitApply(t, dir, res.Patch)
		sameManifest(t, "clean checkout after git apply", hostManifest(t, dir), guestTree)
	})
	t.Run("export --apply", func(t *testing.T) {
		dir := copyRepo(t, atPrepare)
		// The guest's symlinks out of the repository are refused by name
		// unless asked for, and nothing is applied.
		dirBefore := repoState(t, dir)
		_, errOut, code := d.run("vm", "workspace", "export", vm, "--apply", dir)
		if code == 0 || !strings.Contains(errOut, `"escape-link"`) || !strings.Contains(errOut, `"/etc/passwd"`) ||
			!strings.Contains(errOut, "--allow-symlinks-out") || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("apply of symlinks out of the repository: exit %d, stderr %q", code, errOut)
		}
		if diff := stateDiff(dirBefore, repoState(t, dir)); len(diff) > 0 {
			t.Errorf("a refused apply changed the target repository")
		}
		out := d.must(t, "vm", "workspace", "export", vm, "--apply", dir, "--allow-symlinks-out")
		checkHost("export --apply elsewhere")
		if !strings.Contains(out, "applied to "+dir) || !strings.Contains(out, "changed") {
			t.Errorf("apply summary: %q", out)
		}
		sameManifest(t, "host after export --apply", hostManifest(t, dir, ignoredFiles...), guestTree)

		// A name with a control character is refused and nothing is applied.
		d.must(t, "vm", "exec", vm, "--", "sh", "-c", `printf x > "$1/$(printf 'bad\001name')"`, "sh", gp)
		defer d.must(t, "vm", "exec", vm, "--", "sh", "-c", `rm -f "$1/$(printf 'bad\001name')"`, "sh", gp)
		target := copyRepo(t, atPrepare)
		targetBefore := repoState(t, target)
		_, errOut, code = d.run("vm", "workspace", "export", vm, "--apply", target)
		if code == 0 || !strings.Contains(errOut, "control characters") || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("apply of a control-character name: exit %d, stderr %q", code, errOut)
		}
		if diff := stateDiff(targetBefore, repoState(t, target)); len(diff) > 0 {
			t.Errorf("a refused apply changed the target repository")
		}
	})
	t.Run("modes and untracked files", func(t *testing.T) {
		clean := filepath.Join(t.TempDir(), "head")
		hostGit(t, filepath.Dir(clean), "clone", "-q", repo, clean)
		c := prepare(t, d, vm, repo, "--mode", "commit", "--guest-path", "/root/commit-ws")
		if c.Mode != "commit" || c.BaseCommit != head {
			t.Errorf("commit-mode result %+v", c)
		}
		sameManifest(t, "commit mode", guestManifest(t, d, vm, "/root/commit-ws"), hostManifest(t, clean))
		if e := export(t, d, vm, "--guest-path", "/root/commit-ws"); e.HasChanges || len(e.Patch) != 0 || len(e.ChangedFiles) != 0 {
			t.Errorf("export of an untouched workspace: %+v", e)
		}
		prepare(t, d, vm, repo, "--guest-path", "/root/tracked-ws")
		sameManifest(t, "worktree mode without untracked", guestManifest(t, d, vm, "/root/tracked-ws"),
			hostManifest(t, repo, append(ignoredFiles, "./notes/untracked file.txt")...))
		old := prepare(t, d, vm, repo, "--mode", "commit", "--from", "HEAD~1", "--guest-path", "/root/old-ws")
		if old.BaseCommit != parent {
			t.Errorf("--from HEAD~1: base %s, want %s", old.BaseCommit, parent)
		}
		checkHost("prepare in every mode")
		d.must(t, "vm", "exec", vm, "--", "sh", "-c", "mkdir -p /root/occupied && touch /root/occupied/mine")
		for _, bad := range [][]string{
			{"--mode", "commit", "--include-untracked", "--guest-path", "/root/x"},
			{"--mode", "mirror", "--guest-path", "/root/x"},
			{"--guest-path", "/root/occupied"},
			{"--from", "no-such-rev", "--guest-path", "/root/x"},
		} {
			if out, errOut, code := d.run(append([]string{"vm", "workspace", "prepare", vm, repo}, bad...)...); code == 0 || strings.TrimSpace(errOut) == "" {
				t.Errorf("prepare %q: exit %d %s %s", bad, code, out, errOut)
			}
		}
		if out := d.must(t, "vm", "exec", vm, "--", "ls", "/root/occupied"); out != "mine\n" {
			t.Errorf("a refused prepare touched /root/occupied: %q", out)
		}
		checkHost("refused prepares")
	})
}

// TestWorkspaceWithoutGuestGit round-trips through the busybox image, which
// has no git: the files still arrive and the export still works.
func TestWorkspaceWithoutGuestGit(t *testing.T) {
	d := sharedDaemon(t)
	const vm = "wsbb"
	d.must(t, "vm", "create", "--name", vm, "--image", "bb", "--memory", "256", "--vcpus", "1")
	defer d.run("vm", "delete", "--force", vm)
	d.must(t, "vm", "exec", vm, "--", "ln", "-sf", "/bin/busybox", "/bin/readlink")
	repo := testRepo(t)
	atPrepare := copyRepo(t, repo)
	before := repoState(t, repo)
	requireCovered(t, repo, before)
	ws := prepare(t, d, vm, repo, "--include-untracked", "--guest-path", "/root/ws")
	if ws.GuestPath != "/root/ws" || ws.FileCount != 13 {
		t.Fatalf("prepare: %+v", ws)
	}
	if _, _, code := d.run("vm", "exec", vm, "--", "test", "-e", "/root/ws/.git"); code == 0 {
		t.Errorf("a guest without git got a .git folder")
	}
	sameManifest(t, "guest after prepare", guestManifest(t, d, vm, "/root/ws"), hostManifest(t, repo, ignoredFiles...))
	d.must(t, "vm", "ssh", vm, "--", "sh", "-c", shellQuoteArg(guestEdits), "sh", "/root/ws")
	guestTree := withoutFiles(guestManifest(t, d, vm, "/root/ws"), guestIgnored...)
	res := export(t, d, vm)
	if diff := stateDiff(before, repoState(t, repo)); len(diff) > 0 {
		t.Fatalf("host repository changed by prepare or export:\n%s", strings.Join(diff, "\n"))
	}
	if !res.HasChanges || !slices.Contains(res.ChangedFiles, "renamed é.txt") {
		t.Fatalf("export: %+v", res)
	}
	for _, p := range guestIgnored {
		if slices.Contains(res.ChangedFiles, strings.TrimPrefix(p, "./")) {
			t.Errorf("ignored guest file %s exported", p)
		}
	}
	dir := copyRepo(t, atPrepare)
	gitApply(t, dir, res.Patch)
	sameManifest(t, "host after git apply", hostManifest(t, dir, ignoredFiles...), guestTree)
}

// shellQuoteArg quotes s for the remote shell that OpenSSH hands its
// command line to.
func shellQuoteArg(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
