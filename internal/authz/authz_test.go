package authz

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
