package authz

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"banger/internal/api"
)

func TestListenUnixAsCaller(t *testing.T) {
	needRoot(t)
	dir := worldDir(t)
	mine := filepath.Join(dir, "nobody")
	os.Mkdir(mine, 0o700)
	os.Chown(mine, 65534, 65534)
	path := filepath.Join(mine, "fwd.sock")

	f, err := ListenUnix(nobody, Caller{UID: 65534, GID: 65534}, path)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 || st.Uid != 65534 {
		t.Fatalf("socket %v mode %o uid %d, want a 0600 socket of nobody's", fi.Mode(), fi.Mode().Perm(), st.Uid)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("connect as root: %v", err)
	}
	b := make([]byte, 2)
	c.Read(b)
	c.Close()
	if string(b) != "ok" {
		t.Fatalf("read %q", b)
	}

	// A stale socket of the caller's is replaced; anything else is not.
	ln.Close()
	if f, err := ListenUnix(nobody, Caller{UID: 65534, GID: 65534}, path); err != nil {
		t.Fatalf("replacing a stale socket: %v", err)
	} else {
		f.Close()
	}
	other := filepath.Join(dir, "file")
	os.WriteFile(other, nil, 0o666)
	if _, err := ListenUnix(nobody, Caller{UID: 65534, GID: 65534}, other); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("over a root file: %v", err)
	}
	// Where the caller may not create, nothing is made.
	if _, err := ListenUnix(nobody, Caller{UID: 65534, GID: 65534}, filepath.Join(dir, "x.sock")); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("in a root 0755 dir: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "x.sock")); err == nil {
		t.Fatal("a socket was made in a folder the caller cannot write")
	}
	// A symlink at the path is not followed (and not replaced).
	link := filepath.Join(mine, "link.sock")
	os.Symlink(filepath.Join(dir, "elsewhere.sock"), link)
	if _, err := ListenUnix(nobody, Caller{UID: 65534, GID: 65534}, link); err == nil {
		t.Fatal("a symlink at the path was accepted")
	}
	if err := RemoveSocket(nobody, Caller{UID: 65534, GID: 65534}, path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err == nil {
		t.Fatal("RemoveSocket left the socket")
	}
}
