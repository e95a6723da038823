package iox

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestContextReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := ContextReader(ctx, bytes.NewReader([]byte("hello")))
	buf := make([]byte, 2)
	if n, err := r.Read(buf); n != 2 || err != nil {
		t.Fatalf("read: %d, %v", n, err)
	}
	cancel()
	if _, err := io.ReadAll(r); err != context.Canceled {
		t.Fatalf("read after cancel: %v", err)
	}
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	if err := os.WriteFile(src, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CopyFile(src, dst, 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if data, _ := os.ReadFile(dst); err != nil || string(data) != "data" || fi.Mode().Perm() != 0o640&^umask() {
		t.Fatalf("copy: %q, %v, %v", data, fi.Mode(), err)
	}
	if err := CopyFile(src, dst, 0o640); err == nil {
		t.Fatal("copy over an existing file: no error")
	}
	if err := CopyFile(filepath.Join(dir, "missing"), filepath.Join(dir, "x"), 0o644); err == nil {
		t.Fatal("copy of a missing file: no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Fatal("a failed copy left its destination")
	}
}

func umask() os.FileMode {
	dir, _ := os.MkdirTemp("", "umask")
	defer os.RemoveAll(dir)
	f, _ := os.OpenFile(filepath.Join(dir, "f"), os.O_CREATE|os.O_WRONLY, 0o777)
	fi, _ := f.Stat()
	f.Close()
	return 0o777 &^ fi.Mode().Perm()
}

func TestOwnDir(t *testing.T) {
	base := t.TempDir()
	made := filepath.Join(base, "made")
	if err := OwnDir(made); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(base, "loose")
	os.Mkdir(loose, 0o755)
	os.Chmod(loose, 0o755)
	if err := OwnDir(loose); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{made, loose} {
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %o, want 0700", d, fi.Mode().Perm())
		}
	}
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	link := filepath.Join(base, "link")
	os.Symlink(made, link)
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	for _, d := range []string{open, link, file} {
		if err := OwnDir(d); err == nil {
			t.Errorf("OwnDir(%s) took a folder others may write, a link or a file", d)
		}
	}
}
