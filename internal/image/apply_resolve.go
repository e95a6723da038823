package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinks bounds symlink expansion while resolving a path (as the kernel's
// ELOOP limit does).
const maxLinks = 40

// resolveDir returns the real path of the directory rel (slash-separated,
// relative to the root), following symlinks one component at a time and
// never leaving the root: an absolute symlink target restarts from the root,
// a relative one that climbs above the root is an error. With create,
// missing directories are made (0755); without, a missing directory yields
// "" and no error.
func (a *applier) resolveDir(rel string, create bool) (string, error) {
	parts := splitPath(rel)
	var cur []string
	links := 0
	for len(parts) > 0 {
		p := parts[0]
		parts = parts[1:]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return "", fmt.Errorf("path %q leads outside the root through a symlink", rel)
			}
			cur = cur[:len(cur)-1]
			continue
		}
		next := filepath.Join(a.root, filepath.Join(cur...), p)
		fi, err := os.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !create {
				return "", nil
			}
			if err := os.Mkdir(next, 0o755); err != nil {
				return "", err
			}
			cur = append(cur, p)
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			links++
			if links > maxLinks {
				return "", fmt.Errorf("path %q: too many levels of symlinks", rel)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(target, "/") {
				cur = nil
			}
			parts = append(splitPath(target), parts...)
		case fi.IsDir():
			cur = append(cur, p)
		default:
			return "", fmt.Errorf("path %q: %s is not a directory", rel, path.Join(append(cur, p)...))
		}
	}
	return filepath.Join(a.root, filepath.Join(cur...)), nil
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}
