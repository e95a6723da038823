package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"banger/internal/paths"
)

// State file modes: nothing in the state directory is readable by other
// users. The daemon reads and writes it as itself; callers get what they may
// see through the API only.
const (
	stateDirMode  = 0o700
	stateFileMode = 0o600
)

// secureState gives the state directory its modes: the folder and every
// top-level folder 0700, the database and its WAL and shared-memory files
// 0600, and managed image files readable by their owner (the daemon) alone.
// It runs at every start, so state made by an older banger (database 0644,
// images world-readable) is fixed in place.
func secureState(state paths.State) error {
	dirs := []string{state.Dir, filepath.Dir(state.Log()), state.Kernels(), state.Images(), state.Blobs(),
		state.VMs(), state.SSH(), state.Cache(), state.Network(), state.Secrets()}
	for _, d := range dirs {
		if err := os.MkdirAll(d, stateDirMode); err != nil {
			return fmt.Errorf("create state folder: %w", err)
		}
		if err := chmodNoFollow(d, stateDirMode); err != nil {
			return fmt.Errorf("state folder %s: %w", d, err)
		}
	}
	// The database is made here, empty (SQLite takes an empty file as a new
	// database), so that it never exists with another mode; SQLite gives
	// its -wal and -shm files the database's mode.
	f, err := os.OpenFile(state.DB(), os.O_CREATE|os.O_WRONLY, stateFileMode)
	if err != nil {
		return fmt.Errorf("database %s: %w", state.DB(), err)
	}
	f.Close()
	for _, p := range []string{state.DB(), state.DB() + "-wal", state.DB() + "-shm", state.Lock(), state.Log()} {
		if err := chmodNoFollow(p, stateFileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state file %s: %w", p, err)
		}
	}
	// Managed images made before these modes were world-readable.
	return filepath.WalkDir(state.Images(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if mode := info.Mode().Perm(); mode&0o077 != 0 {
			if err := os.Chmod(p, mode&^0o077); err != nil {
				return fmt.Errorf("image file %s: %w", p, err)
			}
		}
		return nil
	})
}

// chmodNoFollow sets the mode of path, refusing a symlink (the state
// directory holds none of its own).
func chmodNoFollow(path string, mode os.FileMode) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("is a symlink; banger made none here: remove it")
	}
	return os.Chmod(path, mode)
}
