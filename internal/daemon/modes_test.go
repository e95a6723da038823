package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"banger/internal/paths"
)

// TestSecureStateFixesAnOldInstall: state made with the old modes (database
// 0644, folders 0755, a world-readable managed image) is private after start.
func TestSecureStateFixesAnOldInstall(t *testing.T) {
	state := paths.State{Dir: filepath.Join(t.TempDir(), "state")}
	img := filepath.Join(state.Images(), "abc", "rootfs.ext4")
	for _, d := range []string{state.Dir, state.Kernels(), filepath.Dir(img), state.VMs()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
	}
	for _, f := range []string{state.DB(), state.DB() + "-wal", state.DB() + "-shm", img} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(state.Dir, 0o711)
	if err := secureState(state); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		state.Dir: 0o700, state.Kernels(): 0o700, state.Images(): 0o700, state.VMs(): 0o700,
		state.Blobs(): 0o700, state.SSH(): 0o700, state.Cache(): 0o700, filepath.Dir(state.Log()): 0o700, state.Secrets(): 0o700,
		state.DB(): 0o600, state.DB() + "-wal": 0o600, state.DB() + "-shm": 0o600,
		img: 0o600, filepath.Dir(img): 0o700,
	}
	for p, m := range want {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != m {
			t.Errorf("%s: mode %o, want %o", p, fi.Mode().Perm(), m)
		}
	}
}

// TestSecureStateMakesANewDatabasePrivate: a fresh state directory gets an
// empty database file 0600 before SQLite opens it.
func TestSecureStateMakesANewDatabasePrivate(t *testing.T) {
	state := paths.State{Dir: filepath.Join(t.TempDir(), "state")}
	if err := secureState(state); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(state.DB())
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 0 {
		t.Fatalf("database: %v %v", fi, err)
	}
}

func TestSecureStateRefusesASymlinkedFolder(t *testing.T) {
	state := paths.State{Dir: filepath.Join(t.TempDir(), "state")}
	elsewhere := t.TempDir()
	os.Chmod(elsewhere, 0o755)
	os.MkdirAll(state.Dir, 0o700)
	if err := os.Symlink(elsewhere, state.Kernels()); err != nil {
		t.Fatal(err)
	}
	if err := secureState(state); err == nil {
		t.Fatal("a symlinked state folder was accepted")
	}
	if fi, _ := os.Stat(elsewhere); fi.Mode().Perm() != 0o755 {
		t.Fatalf("the symlink's target was chmodded to %o", fi.Mode().Perm())
	}
}
