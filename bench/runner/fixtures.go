package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"banger/internal/iox"
)

// setup gives the daemon a kernel and the busybox image "bb".
func (e *env) setup(ctx context.Context) error {
	if e.cfg.kernel != "" {
		if _, err := e.d.cli(ctx, "kernel", "import", "debian-12-cloud", "--from-dir", e.cfg.kernel); err != nil {
			return fmt.Errorf("import kernel: %w", err)
		}
	} else if _, err := e.d.cli(ctx, "kernel", "pull", "debian-12-cloud"); err != nil {
		return fmt.Errorf("pull kernel: %w", err)
	}
	e.rootfs = e.cfg.image
	if e.rootfs == "" {
		var err error
		if e.rootfs, err = busyboxRootfs(ctx, filepath.Join(e.cfg.work, "bb"), "256M"); err != nil {
			return err
		}
	}
	e.image = "bb"
	if _, err := e.d.cli(ctx, "image", "register", "--name", e.image, "--rootfs", e.rootfs, "--kernel-ref", "debian-12-cloud"); err != nil {
		return fmt.Errorf("register busybox image: %w", err)
	}
	return nil
}

var backendRE = regexp.MustCompile(`msg="vmm backend" backend=(\S+) accel=(\S+)(?: why="((?:[^"\\]|\\.)*)")?`)

// accel names the accelerator bangerd chose, and why, from its log.
func (e *env) accel() string {
	data, _ := os.ReadFile(e.d.logf.Name())
	return accelFromLog(data)
}

// accelFromLog reads the last "vmm backend" line: the daemon logs another
// when it decides again once a kernel is stored.
func accelFromLog(log []byte) string {
	all := backendRE.FindAllSubmatch(log, -1)
	if all == nil {
		return "unknown"
	}
	m := all[len(all)-1]
	if len(m[3]) == 0 {
		return fmt.Sprintf("%s (%s)", m[1], m[2])
	}
	return fmt.Sprintf("%s (%s: %s)", m[1], m[2], strings.ReplaceAll(string(m[3]), `\"`, `"`))
}

// busyboxRootfs builds an ext4 root filesystem of the given size in dir
// holding busybox-static with every applet linked (sh, tar, ...): what the
// benchmarks need in a guest, booting fast.
func busyboxRootfs(ctx context.Context, dir, size string) (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("busybox rootfs: busybox-static not installed: %w", err)
	}
	root := filepath.Join(dir, "root")
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "root", "tmp", "run", "usr/bin", "usr/sbin", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := iox.CopyFile(bb, filepath.Join(root, "bin/busybox"), 0o755); err != nil {
		return "", fmt.Errorf("busybox rootfs: %w", err)
	}
	list, err := exec.CommandContext(ctx, bb, "--list-full").Output()
	if err != nil {
		return "", fmt.Errorf("busybox --list-full: %w", err)
	}
	for _, app := range strings.Fields(string(list)) {
		if app == "bin/busybox" || strings.Contains(app, "..") {
			continue
		}
		target := filepath.Join(root, app)
		if _, err := os.Lstat(target); err == nil {
			continue
		}
		rel, _ := filepath.Rel(filepath.Dir(target), filepath.Join(root, "bin/busybox"))
		if err := os.Symlink(rel, target); err != nil {
			return "", err
		}
	}
	files := map[string]string{"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n"}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			return "", err
		}
	}
	img := filepath.Join(dir, "busybox-"+size+".ext4")
	if err := runCmd(ctx, "", "mkfs.ext4", "-q", "-F", "-d", root, img, size); err != nil {
		return "", fmt.Errorf("busybox rootfs: %w", err)
	}
	return img, nil
}

// runCmd runs a command in dir, returning its output in the error.
func runCmd(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(lastLines(string(out), 5)))
	}
	return nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// newc writes a cpio archive in the kernel's "newc" format.
type newc struct {
	buf  bytes.Buffer
	ino  int
	fail error
}

func (c *newc) entry(name string, mode uint32, data []byte, major, minor uint32) {
	c.ino++
	fmt.Fprintf(&c.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(name)+1, 0)
	c.buf.WriteString(name)
	c.buf.WriteByte(0)
	c.pad()
	c.buf.Write(data)
	c.pad()
}

func (c *newc) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

func (c *newc) bytes() []byte {
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	return c.buf.Bytes()
}

// idleInitramfs writes an initramfs whose /init (busybox sh) prints
// "bench-idle-ready" on the console and then sleeps: a guest that boots the
// same kernel and does nothing, the bare-QEMU baseline of B6.
func idleInitramfs(path string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("idle initramfs: busybox-static not installed: %w", err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	var c newc
	c.entry("dev", 0o040755, nil, 0, 0)
	c.entry("dev/console", 0o020600, nil, 5, 1)
	c.entry("bin", 0o040755, nil, 0, 0)
	c.entry("bin/busybox", 0o100755, data, 0, 0)
	c.entry("init", 0o100755, []byte("#!/bin/busybox sh\necho bench-idle-ready\nexec /bin/busybox sleep 2147483647\n"), 0, 0)
	return os.WriteFile(path, c.bytes(), 0o644)
}

// makeImageMain is `banger-bench make-image DIR SIZE`: it builds the busybox
// rootfs (used by bench/portable.sh build) and prints its path.
func makeImageMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: banger-bench make-image DIR SIZE")
		return 2
	}
	img, err := busyboxRootfs(context.Background(), args[0], args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "banger-bench:", err)
		return 1
	}
	os.RemoveAll(filepath.Join(args[0], "root"))
	fmt.Println(img)
	return 0
}
