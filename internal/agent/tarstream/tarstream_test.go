package tarstream

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"banger/internal/agent/proto"
)

func mustWrite(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// describe lists a tree as "path mode [content|-> target] mtime" lines.
func describe(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			line += " " + string(data) + " " + fi.ModTime().UTC().Format(time.RFC3339)
		default:
			line += " " + fi.ModTime().UTC().Format(time.RFC3339)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "README.md"), "hello\n", 0o644)
	mustWrite(t, filepath.Join(src, "bin/run.sh"), "#!/bin/sh\necho hi\n", 0o755)
	mustWrite(t, filepath.Join(src, "dir with space/ünïcode.txt"), "x", 0o600)
	mustWrite(t, filepath.Join(src, ".git/HEAD"), "ref: refs/heads/main\n", 0o644)
	mustWrite(t, filepath.Join(src, "sub/.git"), "gitdir: elsewhere\n", 0o644)
	if err := os.Symlink("../README.md", filepath.Join(src, "bin/readme")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "outside")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{"README.md", "bin/run.sh", "empty", "bin"} {
		if err := os.Chtimes(filepath.Join(src, p), old, old); err != nil {
			t.Fatal(err)
		}
	}

	var archive bytes.Buffer
	if err := Write(&archive, src, []string{".git"}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "new")
	sum, err := Extract(&archive, dst)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Files != 5 || sum.Bytes != int64(len("hello\n#!/bin/sh\necho hi\nx")) {
		t.Fatalf("summary %+v, want 5 files (3 regular, 2 symlinks)", sum)
	}

	// Everything but the .git entries must come back identical.
	// Removing them changes their folders' mtimes: put those back.
	for _, p := range []string{".git", "sub/.git"} {
		parent := filepath.Dir(filepath.Join(src, p))
		before, err := os.Stat(parent)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(src, p)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(parent, before.ModTime(), before.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	got, want := describe(t, dst), describe(t, src)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("extracted tree differs\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fi, _ := os.Lstat(filepath.Join(dst, "bin/readme")); fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatal("symlink was not kept as a symlink")
	}
}

type entry struct {
	name, link, body string
	typ              byte
}

func archive(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), ModTime: time.Now()}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestTarExtractRefusesEscapes(t *testing.T) {
	cases := map[string][]entry{
		"dotdot":   {{name: "../evil", body: "x", typ: tar.TypeReg}},
		"absolute": {{name: "/tmp/evil", body: "x", typ: tar.TypeReg}},
		"nested":   {{name: "a/../../evil", body: "x", typ: tar.TypeReg}},
		"through symlink": {
			{name: "link", link: "..", typ: tar.TypeSymlink},
			{name: "link/evil", body: "x", typ: tar.TypeReg},
		},
		"through absolute symlink": {
			{name: "link", link: "/tmp", typ: tar.TypeSymlink},
			{name: "link/evil", body: "x", typ: tar.TypeReg},
		},
		"hard link out": {{name: "h", link: "../outside", typ: tar.TypeLink}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "dst")
			if _, err := Extract(archive(t, entries...), dst); err == nil {
				t.Fatal("archive accepted")
			}
			if _, err := os.Lstat(filepath.Join(parent, "evil")); err == nil {
				t.Fatal("file written outside the target")
			}
			if _, err := os.Lstat("/tmp/evil"); err == nil {
				t.Fatal("file written to /tmp")
			}
		})
	}
}

func TestTarExtractReplacesSymlinkInsteadOfFollowing(t *testing.T) {
	dst := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	mustWrite(t, victim, "original", 0o644)
	if err := os.Symlink(victim, filepath.Join(dst, "f")); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(archive(t, entry{name: "f", body: "new", typ: tar.TypeReg}), dst); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "original" {
		t.Fatalf("write followed a symlink: victim = %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dst, "f")); string(data) != "new" {
		t.Fatalf("f = %q", data)
	}
}

func TestWriteRefuses(t *testing.T) {
	if err := Write(&bytes.Buffer{}, t.TempDir(), []string{"["}); err == nil {
		t.Error("bad exclude pattern: no error")
	}
	if err := Write(&bytes.Buffer{}, filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("archive of a missing dir: no error")
	}
}

func TestWriteChangedLeavesOutUnchanged(t *testing.T) {
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, name := range []string{"same.txt", "edited.txt", "chmod.txt", "touched.txt"} {
		tw.WriteHeader(&tar.Header{Name: "d/" + name, Mode: 0o644, Size: 3, ModTime: mtime, Typeflag: tar.TypeReg})
		tw.Write([]byte("abc"))
	}
	tw.Close()
	dst := filepath.Join(t.TempDir(), "ws")
	sum, err := Extract(&in, dst)
	if err != nil || sum.DoneUnixNano == 0 || sum.Files != 4 {
		t.Fatalf("extract: %+v %v", sum, err)
	}
	mustWrite(t, filepath.Join(dst, "d/edited.txt"), "xyz", 0o644)
	os.Chtimes(filepath.Join(dst, "d/edited.txt"), mtime, mtime)
	os.Chmod(filepath.Join(dst, "d/chmod.txt"), 0o755)
	later := mtime.Add(time.Second)
	os.Chtimes(filepath.Join(dst, "d/touched.txt"), later, later)
	mustWrite(t, filepath.Join(dst, "new.txt"), "new", 0o644)

	var out bytes.Buffer
	if err := WriteChanged(&out, dst, nil, &proto.Unchanged{MtimeUnixNano: mtime.UnixNano(), CtimeUnixNano: sum.DoneUnixNano}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		body, _ := io.ReadAll(tr)
		got[h.Name] = fmt.Sprintf("%s|%s|%o", body, h.PAXRecords[proto.PAXUnchanged], h.Mode)
	}
	want := map[string]string{"d/same.txt": "|3|644", "d/edited.txt": "xyz||644", "d/chmod.txt": "abc||755",
		"d/touched.txt": "abc||644", "new.txt": "new||644"}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %q, want %q", name, got[name], w)
		}
	}
	// Without the bounds every file comes in full, in plain headers.
	out.Reset()
	if err := Write(&out, dst, nil); err != nil {
		t.Fatal(err)
	}
	tr = tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if len(h.PAXRecords) != 0 || h.Format == tar.FormatPAX {
			t.Errorf("%s: PAX header %v (format %v)", h.Name, h.PAXRecords, h.Format)
		}
	}
}

func TestExtractModesWithUmask(t *testing.T) {
	m, ok := processUmask()
	if !ok {
		t.Skip("no Umask in /proc/self/status")
	}
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	modes := map[string]int64{"plain": 0o644, "exec": 0o755, "private": 0o600, "group": 0o664, "setuid": 0o4755}
	for name, mode := range modes {
		tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: 1, Typeflag: tar.TypeReg})
		tw.Write([]byte("x"))
	}
	tw.Close()
	dst := t.TempDir()
	if _, err := Extract(&in, dst); err != nil {
		t.Fatal(err)
	}
	for name, mode := range modes {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		want := fs.FileMode(mode).Perm() | modeBits(mode)
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v (umask %o)", name, fi.Mode(), want, m)
		}
	}
}

// failAfter fails every write once n bytes went through.
type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, fmt.Errorf("reader went away")
	}
	return len(p), nil
}

// TestWriteManyFiles: small and larger files come back whole and in walk
// order, and a writer that fails stops the archive with its error.
func TestWriteManyFiles(t *testing.T) {
	src := t.TempDir()
	var want []string
	for i := range 300 {
		name := fmt.Sprintf("d%d/f%03d", i%7, i)
		body := strings.Repeat(fmt.Sprintf("%d ", i), i)
		if i%50 == 0 {
			body = strings.Repeat("big ", 64<<10) // over the copy buffer
		}
		mustWrite(t, filepath.Join(src, name), body, 0o644)
		want = append(want, name+"="+body)
	}
	var out bytes.Buffer
	if err := Write(&out, src, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			body, _ := io.ReadAll(tr)
			got = append(got, h.Name+"="+string(body))
		}
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("archive differs: %d files, want %d", len(got), len(want))
	}
	if err := Write(&failAfter{n: 10 << 10}, src, nil); err == nil || !strings.Contains(err.Error(), "reader went away") {
		t.Fatalf("failing writer: %v", err)
	}
}
