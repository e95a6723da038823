package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var busyboxOnce sync.Once
var busyboxImage string
var busyboxErr error

// busyboxDir holds the busybox rootfs; the run removes it at its end.
var busyboxDir string

// busyboxRootfs builds (once per run) a small ext4 root filesystem holding
// busybox-static: enough userland for sh, nc, ls and friends, no git.
func busyboxRootfs(t testing.TB) string {
	busyboxOnce.Do(func() {
		dir, err := os.MkdirTemp("", "banger-e2e-bb-")
		if err != nil {
			busyboxErr = err
			return
		}
		busyboxDir = dir
		root := filepath.Join(dir, "root")
		for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "root", "tmp", "run", "usr/bin", "var/tmp"} {
			os.MkdirAll(filepath.Join(root, d), 0o755)
		}
		bb, err := exec.LookPath("busybox")
		if err != nil {
			busyboxErr = err
			return
		}
		data, err := os.ReadFile(bb)
		if err != nil {
			busyboxErr = err
			return
		}
		os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755)
		for _, c := range []string{"sh", "ls", "cat", "echo", "mkdir", "rm", "mv", "cp", "sleep", "uname", "id", "ps",
			"nc", "wc", "head", "tail", "grep", "sed", "chmod", "ln", "touch", "env", "hostname", "ip", "mount", "df",
			"true", "false", "find", "sort", "tr", "sync", "dd", "stat", "printf", "test", "[", "md5sum", "date", "ping"} {
			os.Symlink("busybox", filepath.Join(root, "bin", c))
		}
		os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
		os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644)
		img := filepath.Join(dir, "busybox.ext4")
		if out, err := exec.Command("mkfs.ext4", "-q", "-d", root, img, "64M").CombinedOutput(); err != nil {
			busyboxErr = &exec.Error{Name: string(out), Err: err}
			return
		}
		busyboxImage = img
	})
	if busyboxErr != nil {
		t.Fatalf("busybox rootfs: %v", busyboxErr)
	}
	return busyboxImage
}

// registerBusybox registers the busybox rootfs as an image of d.
func registerBusybox(t testing.TB, d *daemon, name string) {
	d.must(t, "image", "register", "--name", name, "--rootfs", busyboxRootfs(t), "--kernel-ref", "debian-12-cloud")
}

// debianImage makes a Debian bookworm image (debootstrap through the daemon,
// cached across runs) with the default development package set, registered
// as "deb" on d.
func debianImage(t testing.TB, d *daemon) string {
	t.Helper()
	cached := filepath.Join(cacheDir(), "images", "debian-bookworm-dev.ext4")
	if _, err := os.Stat(cached); err != nil {
		os.MkdirAll(filepath.Dir(cached), 0o755)
		var img struct {
			RootfsPath string `json:"rootfs_path"`
		}
		d.mustJSON(t, &img, "image", "build", "debian", "--name", "deb-build", "--size", "2G")
		if out, err := exec.Command("cp", "--sparse=always", img.RootfsPath, cached+".tmp").CombinedOutput(); err != nil {
			t.Fatalf("cache debian image: %v %s", err, out)
		}
		os.Rename(cached+".tmp", cached)
		d.must(t, "image", "delete", "deb-build")
	}
	if _, _, code := d.run("image", "show", "deb"); code != 0 {
		d.must(t, "image", "register", "--name", "deb", "--rootfs", cached, "--kernel-ref", "debian-12-cloud")
	}
	return "deb"
}
