package vmmproc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// RemoveFiles deletes the named files of dir (a VMM's pidfile, sockets);
// missing ones are not an error. It tries them all and joins the errors.
func RemoveFiles(dir string, names ...string) error {
	var errs []error
	for _, name := range names {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
