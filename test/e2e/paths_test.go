package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pathsNobody runs the CLI as uid 65534 against d (whose socket the test
// opens to everyone: the group setup is not what this test is about).
type pathsNobody struct {
	d   *daemon
	cli string
	cfg string
}

func newPathsNobody(t *testing.T, d *daemon) pathsNobody {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	cli := filepath.Join(dir, "banger")
	data, err := os.ReadFile(filepath.Join(binDir, "banger"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cli, data, 0o755)
	cfg := filepath.Join(dir, "config")
	os.Mkdir(cfg, 0o777)
	os.Chmod(cfg, 0o777)
	os.Chmod(d.dir, 0o711)
	os.Chmod(d.socket, 0o666)
	return pathsNobody{d: d, cli: cli, cfg: cfg}
}

func (n pathsNobody) run(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.cli, append([]string{"--socket", n.d.socket}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + n.cfg, "XDG_CONFIG_HOME=" + n.cfg}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code, e = -1, *bytes.NewBufferString(err.Error())
	}
	return o.String(), e.String(), code
}

// TestCallerPathsOpenedOnceAsCaller: an unprivileged caller's paths are
// opened by bangerd's helper running as that caller, and only the
// descriptor is used: a root-only file is refused (the same answer whether
// it exists or not when its folder is closed), a registered rootfs is a
// managed copy that a later symlink swap cannot change, and a kernel
// folder with a link to a root-only file is refused. No VM boots.
func TestCallerPathsOpenedOnceAsCaller(t *testing.T) {
	d := newDaemon(t)
	defer d.cleanup()
	nobody := newPathsNobody(t, d)
	work := t.TempDir()
	os.Chmod(work, 0o755)
	os.Chmod(filepath.Dir(work), 0o755)
	copyTo := func(name string, mode os.FileMode) string {
		p := filepath.Join(work, name)
		if out, err := exec.Command("cp", "--sparse=always", busyboxRootfs(t), p).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		os.Chmod(p, mode)
		return p
	}
	mine := copyTo("mine.ext4", 0o644)
	pristine := copyTo("pristine.ext4", 0o600)
	secret := copyTo("secret.ext4", 0o600)
	closed := filepath.Join(work, "closed")
	os.Mkdir(closed, 0o700)
	copyTo("closed/exists.ext4", 0o644)

	if _, errOut, code := nobody.run("image", "register", "--name", "direct", "--rootfs", secret); code == 0 || !strings.Contains(errOut, "cannot read "+secret) {
		t.Fatalf("nobody registering a root-only file: exit %d: %s", code, errOut)
	}
	var answers []string
	for _, name := range []string{"exists.ext4", "missing.ext4"} {
		p := filepath.Join(closed, name)
		_, errOut, code := nobody.run("image", "register", "--name", "probe", "--rootfs", p)
		if code == 0 {
			t.Fatalf("nobody registered %s", p)
		}
		answers = append(answers, strings.ReplaceAll(errOut, p, "PATH"))
	}
	if answers[0] != answers[1] {
		t.Fatalf("existing and missing root-only paths answer differently: %q", answers)
	}

	if out, errOut, code := nobody.run("image", "register", "--name", "mine", "--rootfs", mine); code != 0 {
		t.Fatalf("nobody registering a readable file: exit %d: %s %s", code, out, errOut)
	}
	os.Remove(mine)
	if err := os.Symlink(secret, mine); err != nil {
		t.Fatal(err)
	}
	var img struct {
		RootfsPath string `json:"rootfs_path"`
		SourceRef  string `json:"source_ref"`
	}
	d.mustJSON(t, &img, "image", "show", "mine")
	if !strings.HasPrefix(img.RootfsPath, d.state) {
		t.Fatalf("registered image uses %s, not a managed copy", img.RootfsPath)
	}
	if out, err := exec.Command("cmp", img.RootfsPath, pristine).CombinedOutput(); err != nil {
		t.Fatalf("managed copy differs from what was registered: %s", out)
	}

	kdir := filepath.Join(work, "kernel")
	os.MkdirAll(filepath.Join(kdir, "boot"), 0o755)
	os.WriteFile(filepath.Join(kdir, "vmlinuz"), []byte("not really a kernel"), 0o644)
	os.WriteFile(filepath.Join(work, "root-only"), []byte("ROOT-ONLY"), 0o600)
	os.Symlink(filepath.Join(work, "root-only"), filepath.Join(kdir, "boot", "leak"))
	if _, errOut, code := nobody.run("kernel", "import", "leak", "--from-dir", kdir); code == 0 || !strings.Contains(errOut, "cannot read "+filepath.Join(kdir, "boot", "leak")) {
		t.Fatalf("kernel import with a link to a root-only file: exit %d: %s", code, errOut)
	}
	filepath.Walk(filepath.Join(d.state, "kernels"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if data, _ := os.ReadFile(p); bytes.Contains(data, []byte("ROOT-ONLY")) {
				t.Errorf("%s holds root-only content", p)
			}
		}
		return nil
	})
}
