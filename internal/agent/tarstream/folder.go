package tarstream

import (
	"errors"
	"io"
	"io/fs"
	"os"

	"banger/internal/agent/proto"
)

// PathState says whether p is absent, an empty directory or anything else
// (a file, a symlink, a directory with entries): proto.PathAbsent,
// PathEmpty or PathNonEmpty.
func PathState(p string) (string, error) {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return proto.PathAbsent, nil
	case err != nil:
		return "", err
	case !fi.IsDir():
		return proto.PathNonEmpty, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	switch {
	case errors.Is(err, io.EOF) || (err == nil && len(names) == 0):
		return proto.PathEmpty, nil
	case err != nil:
		return "", err
	}
	return proto.PathNonEmpty, nil
}

// Replace removes dir and extracts the tar stream r in its place, then
// reads r to its end (a writer pads the archive after its end marker: its
// side must never block).
func Replace(r io.Reader, dir string) (Summary, error) {
	if err := os.RemoveAll(dir); err != nil {
		return Summary{}, err
	}
	sum, err := Extract(r, dir)
	io.Copy(io.Discard, r)
	return sum, err
}
