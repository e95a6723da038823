package authz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/api"
)

// The test binary doubles as the access-check helper, as bangerd does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == HelperArg {
		os.Exit(RunHelper(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func TestCheckAsCaller(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to act for another uid")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's parent is 0700
	private := filepath.Join(dir, "private")
	public := filepath.Join(dir, "public")
	os.WriteFile(private, []byte("x"), 0o600)
	os.WriteFile(public, []byte("x"), 0o644)
	nobody := WithCaller(context.Background(), Caller{UID: 65534, GID: 65534})
	root := WithCaller(context.Background(), Caller{UID: 0, GID: 0})

	if err := CheckRead(nobody, public); err != nil {
		t.Fatalf("nobody reading a 0644 file: %v", err)
	}
	if err := CheckRead(nobody, private); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("nobody reading a 0600 root file: %v", err)
	}
	if err := CheckRead(root, private); err != nil {
		t.Fatalf("root reading: %v", err)
	}
	if err := CheckWrite(nobody, filepath.Join(dir, "new")); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("nobody creating in a 0755 root dir: %v", err)
	}
	if err := CheckRead(nobody, "relative/path"); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("relative path: %v", err)
	}
	if err := CheckRead(nobody, filepath.Join(dir, "missing")); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("missing path: %v", err)
	}
	// A directory must also be searchable.
	closed := filepath.Join(dir, "closed")
	os.Mkdir(closed, 0o700)
	if err := CheckRead(nobody, closed); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("nobody listing a 0700 root dir: %v", err)
	}
}

func TestCallerFromContext(t *testing.T) {
	c := Caller{UID: 1000, GID: 100, PID: 42}
	if got := CallerFrom(WithCaller(context.Background(), c)); got != c {
		t.Fatalf("got %+v", got)
	}
	if got := CallerFrom(context.Background()); got.UID != os.Getuid() {
		t.Fatalf("default caller %+v", got)
	}
}

// worldDir makes a temporary directory others can enter (t.TempDir's
// parent is 0700).
func worldDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	return dir
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to act for another uid")
	}
}

var nobody = WithCaller(context.Background(), Caller{UID: 65534, GID: 65534})

func TestOpenReadAsCallerKeepsTheOpenedFile(t *testing.T) {
	needRoot(t)
	dir := worldDir(t)
	public := filepath.Join(dir, "public")
	secret := filepath.Join(dir, "secret")
	os.WriteFile(public, []byte("public data"), 0o644)
	os.WriteFile(secret, []byte("root only"), 0o600)

	f, err := OpenRead(nobody, public)
	if err != nil {
		t.Fatalf("nobody opening a 0644 file: %v", err)
	}
	defer f.Close()
	// Swap the name for a symlink to the root-only file: the daemon holds
	// the descriptor the caller opened and never opens the name again.
	os.Remove(public)
	if err := os.Symlink(secret, public); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil || string(got) != "public data" {
		t.Fatalf("read %q, %v; want the original content", got, err)
	}
	// Opening the link now, as nobody, follows it with nobody's rights.
	if _, err := OpenRead(nobody, public); !errors.Is(err, api.ErrPermission) || !strings.Contains(err.Error(), "cannot read") {
		t.Fatalf("nobody opening a link to a root-only file: %v", err)
	}
	if _, err := OpenRead(nobody, secret); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("nobody opening a 0600 root file: %v", err)
	}
	if f, err := OpenRead(WithCaller(context.Background(), Caller{}), secret); err != nil {
		t.Fatalf("root opening: %v", err)
	} else {
		f.Close()
	}
	if _, err := OpenRead(nobody, dir); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("OpenRead of a directory: %v", err)
	}
	if d, err := OpenDir(nobody, dir); err != nil {
		t.Fatalf("OpenDir: %v", err)
	} else {
		d.Close()
	}
}

// A caller learns nothing about paths in a folder they cannot search: a
// missing file and an existing root-only one give the same answer.
func TestNoExistenceOracle(t *testing.T) {
	needRoot(t)
	dir := worldDir(t)
	closed := filepath.Join(dir, "closed")
	os.Mkdir(closed, 0o700)
	os.WriteFile(filepath.Join(closed, "exists"), []byte("x"), 0o644)
	var msgs []string
	for _, name := range []string{"exists", "missing"} {
		p := filepath.Join(closed, name)
		err := CheckRead(nobody, p)
		if !errors.Is(err, api.ErrPermission) {
			t.Fatalf("%s: %v", name, err)
		}
		msgs = append(msgs, strings.ReplaceAll(err.Error(), p, "PATH"))
		_, err = OpenRead(nobody, p)
		msgs = append(msgs, strings.ReplaceAll(err.Error(), p, "PATH"))
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Fatalf("different answers for an existing and a missing path: %q", msgs)
		}
	}
}

func TestWalkAsCaller(t *testing.T) {
	needRoot(t)
	dir := worldDir(t)
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("root only"), 0o600)
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "boot"), 0o755)
	os.MkdirAll(filepath.Join(tree, "other"), 0o755)
	os.WriteFile(filepath.Join(tree, "boot", "a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(tree, "other", "b"), []byte("b"), 0o644)
	os.Symlink("/", filepath.Join(tree, "boot", "root-link"))
	os.Symlink("a", filepath.Join(tree, "boot", "alias"))

	got := map[string]string{}
	err := Walk(nobody, tree, []string{"boot"}, func(e Entry) error {
		if e.Dir {
			got[e.Path] = "dir"
			return nil
		}
		data, err := io.ReadAll(e.File)
		got[e.Path] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{".": "dir", "boot": "dir", "boot/a": "a", "boot/alias": "a"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("walk = %v, want %v", got, want)
	}
	// A link to a file the caller cannot read fails the walk; its content
	// is never read.
	os.Symlink(secret, filepath.Join(tree, "boot", "leak"))
	err = Walk(nobody, tree, nil, func(e Entry) error {
		if e.File != nil {
			data, _ := io.ReadAll(e.File)
			if string(data) == "root only" {
				t.Fatalf("root-only content reached the daemon via %s", e.Path)
			}
		}
		return nil
	})
	if !errors.Is(err, api.ErrPermission) || !strings.Contains(err.Error(), "boot/leak") {
		t.Fatalf("walk over a link to a root-only file: %v", err)
	}
}
