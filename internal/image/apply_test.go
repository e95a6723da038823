package image

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/oci"
)

func TestApplyEntryKinds(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	mtime := time.Unix(1600000000, 0)
	suid := fileE("usr/bin/su", "#!su", 0o4755)
	suid.hdr.Uid, suid.hdr.Gid = 0, 0
	owned := fileE("home/u/notes", "hello", 0o640)
	owned.hdr.Uid, owned.hdr.Gid = 1000, 1001
	owned.hdr.ModTime = mtime
	owned.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.banger": "yes"}
	home := dirE("home/u/", 0o750)
	home.hdr.Uid, home.hdr.Gid = 1000, 1001
	home.hdr.ModTime = mtime
	sticky := dirE("tmp/", 0o1777)
	chr := entry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	blk := entry{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop9", Mode: 0o660, Devmajor: 7, Devminor: 9, Gid: 6}}
	fifo := entry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/pipe", Mode: 0o620}}
	sym := linkE("bin/sh", "../usr/bin/su")
	sym.hdr.Uid, sym.hdr.Gid = 1000, 1000
	l := writeLayer(t, true, home, owned, dirE("usr/", 0o755), dirE("usr/bin/", 0o755), suid, sticky, chr, blk, fifo, sym,
		hardE("usr/bin/su-link", "usr/bin/su"))

	if err := ApplyLayers(context.Background(), []oci.Layer{l}, root); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got := readFile(t, filepath.Join(root, "home/u/notes")); got != "hello" {
		t.Errorf("notes = %q", got)
	}
	st := lstat(t, filepath.Join(root, "home/u/notes"))
	if st.Uid != 1000 || st.Gid != 1001 || st.Mode&0o7777 != 0o640 {
		t.Errorf("notes: uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	if st.Mtim.Sec != mtime.Unix() {
		t.Errorf("notes mtime = %d, want %d", st.Mtim.Sec, mtime.Unix())
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(root, "home/u/notes"), "user.banger", buf); err != nil || string(buf[:n]) != "yes" {
		t.Errorf("xattr = %q, %v", buf[:n], err)
	}
	st = lstat(t, filepath.Join(root, "home/u"))
	if st.Uid != 1000 || st.Mode&0o7777 != 0o750 || st.Mtim.Sec != mtime.Unix() {
		t.Errorf("home/u: uid %d mode %o mtime %d", st.Uid, st.Mode&0o7777, st.Mtim.Sec)
	}
	if st := lstat(t, filepath.Join(root, "usr/bin/su")); st.Mode&0o7777 != 0o4755 {
		t.Errorf("su mode = %o, want 4755", st.Mode&0o7777)
	}
	if st := lstat(t, filepath.Join(root, "tmp")); st.Mode&0o7777 != 0o1777 {
		t.Errorf("tmp mode = %o, want 1777", st.Mode&0o7777)
	}
	st = lstat(t, filepath.Join(root, "dev/null"))
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		t.Errorf("dev/null: mode %o rdev %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	st = lstat(t, filepath.Join(root, "dev/loop9"))
	if st.Mode&syscall.S_IFMT != syscall.S_IFBLK || unix.Minor(st.Rdev) != 9 || st.Gid != 6 {
		t.Errorf("dev/loop9: mode %o minor %d gid %d", st.Mode, unix.Minor(st.Rdev), st.Gid)
	}
	if st := lstat(t, filepath.Join(root, "run/pipe")); st.Mode&syscall.S_IFMT != syscall.S_IFIFO || st.Mode&0o777 != 0o620 {
		t.Errorf("run/pipe: mode %o", st.Mode)
	}
	if target, err := os.Readlink(filepath.Join(root, "bin/sh")); err != nil || target != "../usr/bin/su" {
		t.Errorf("bin/sh -> %q, %v", target, err)
	}
	if st := lstat(t, filepath.Join(root, "bin/sh")); st.Uid != 1000 {
		t.Errorf("symlink uid = %d, want 1000 (lchown)", st.Uid)
	}
	a, b := lstat(t, filepath.Join(root, "usr/bin/su")), lstat(t, filepath.Join(root, "usr/bin/su-link"))
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard link: inodes %d/%d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
}

func TestApplyWhiteoutAndOpaque(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	lower := writeLayer(t, false,
		fileE("a/x", "x", 0o644), fileE("a/y", "y", 0o644),
		fileE("b/old", "old", 0o644), dirE("b/sub/", 0o755), fileE("b/sub/deep", "d", 0o644),
		dirE("c/", 0o755), fileE("c/inner", "i", 0o644),
		fileE("d/keep", "k", 0o644))
	upper := writeLayer(t, true,
		fileE("a/.wh.x", "", 0o644),
		fileE(".wh.c", "", 0o644),
		dirE("b/", 0o755),
		fileE("b/new-before", "nb", 0o644),
		fileE("b/.wh..wh..opq", "", 0o644),
		dirE("b/sub/", 0o755),
		fileE("b/sub/fresh", "f", 0o644),
		fileE("d/.wh.missing", "", 0o644))
	if err := ApplyLayers(context.Background(), []oci.Layer{lower, upper}, root); err != nil {
		t.Fatalf("apply: %v", err)
	}
	mustNotExist(t, filepath.Join(root, "a/x"))
	mustNotExist(t, filepath.Join(root, "a/.wh.x"))
	mustNotExist(t, filepath.Join(root, "c"))
	mustNotExist(t, filepath.Join(root, "b/old"))
	mustNotExist(t, filepath.Join(root, "b/sub/deep"))
	mustNotExist(t, filepath.Join(root, "b/.wh..wh..opq"))
	for p, want := range map[string]string{"a/y": "y", "b/new-before": "nb", "b/sub/fresh": "f", "d/keep": "k"} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

func TestApplyHardLinkAcrossLayers(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	l1 := writeLayer(t, false, fileE("etc/data", "shared", 0o600))
	l2 := writeLayer(t, false, hardE("var/data-link", "etc/data"), hardE("./etc/again", "./etc/data"))
	if err := ApplyLayers(context.Background(), []oci.Layer{l1, l2}, root); err != nil {
		t.Fatalf("apply: %v", err)
	}
	a := lstat(t, filepath.Join(root, "etc/data"))
	b := lstat(t, filepath.Join(root, "var/data-link"))
	if a.Ino != b.Ino || a.Nlink != 3 {
		t.Errorf("inodes %d/%d, nlink %d (want same inode, 3 links)", a.Ino, b.Ino, a.Nlink)
	}
}

func TestApplyReplacesKinds(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	l1 := writeLayer(t, false, linkE("x", outside), fileE("d/f", "f", 0o644), fileE("f", "file", 0o644))
	l2 := writeLayer(t, false, fileE("x", "new", 0o644), fileE("d", "now a file", 0o644), dirE("f/", 0o755))
	if err := ApplyLayers(context.Background(), []oci.Layer{l1, l2}, root); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got := readFile(t, outside); got != "untouched" {
		t.Fatalf("wrote through a symlink to the host: %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(root, "x")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("x should be a regular file now: %v %v", fi, err)
	}
	if got := readFile(t, filepath.Join(root, "d")); got != "now a file" {
		t.Errorf("d = %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(root, "f")); err != nil || !fi.IsDir() {
		t.Errorf("f should be a directory now: %v", err)
	}
}

func TestApplyRefusesEscapes(t *testing.T) {
	requireRoot(t)
	cases := map[string][]entry{
		"dotdot":          {fileE("../evil", "x", 0o644)},
		"inner dotdot":    {fileE("a/../../evil", "x", 0o644)},
		"absolute":        {fileE("/etc/evil", "x", 0o644)},
		"through symlink": {linkE("up", "../../../../../../.."), fileE("up/tmp/evil", "x", 0o644)},
		"chained symlink": {dirE("a/", 0o755), linkE("a/b", ".."), linkE("c", "a/b/.."), fileE("c/evil", "x", 0o644)},
		"hard link out":   {hardE("h", "../../etc/passwd")},
		"hard link abs":   {hardE("h", "/etc/passwd")},
		"root symlink":    {linkE(".", "/etc")},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			err := ApplyLayers(context.Background(), []oci.Layer{writeLayer(t, false, entries...)}, root)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), "entry") {
				t.Errorf("error should name the entry: %v", err)
			}
			left, _ := os.ReadDir(parent)
			if len(left) != 1 {
				t.Errorf("something was written next to the root: %v", left)
			}
		})
	}
}

// An absolute symlink in a parent path means the image's own root, never
// the host's.
func TestApplyAbsoluteSymlinkStaysInRoot(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	hostDir := t.TempDir()
	l := writeLayer(t, false, linkE("abs", hostDir), fileE("abs/pwned", "x", 0o644))
	if err := ApplyLayers(context.Background(), []oci.Layer{l}, root); err != nil {
		t.Fatalf("apply: %v", err)
	}
	mustNotExist(t, filepath.Join(hostDir, "pwned"))
	if got := readFile(t, filepath.Join(root, hostDir, "pwned")); got != "x" {
		t.Errorf("in-root target = %q", got)
	}
}

func TestApplyMissingHardLinkTarget(t *testing.T) {
	root := t.TempDir()
	err := ApplyLayers(context.Background(), []oci.Layer{writeLayer(t, false, hardE("h", "nope"))}, root)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v, want a missing-target error", err)
	}
}
