package iox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// OwnDir makes dir (0700) when missing, or checks the one there: a folder,
// not a symbolic link, of this process's user, that no one else may write
// (a root daemon never works in a folder someone else could have changed).
// Looser read modes, from an older version, are tightened to 0700.
func OwnDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is not a folder of uid %d that only it may write", dir, os.Geteuid())
	}
	return os.Chmod(dir, 0o700)
}
