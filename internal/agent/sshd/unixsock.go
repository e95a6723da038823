package sshd

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxSocketPath is the longest path a Unix socket can be bound at
// (sun_path holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// unixSocket is a listening Unix socket the server created. remove deletes
// its file only while the path still names that socket.
type unixSocket struct {
	*net.UnixListener
	path     string
	dev, ino uint64
}

// listenUnix creates a listening Unix socket at path with the given mode.
// The socket is bound in a private temporary directory beside path, given
// its mode there and hard-linked into place, so it is never reachable at
// path with a wider mode, and an existing file is never replaced, except a
// stale socket (one nobody listens on), which is.
func listenUnix(path string, mode os.FileMode) (*unixSocket, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("socket path %q is longer than %d bytes", abbreviate(path), maxSocketPath)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".bs")
	if err != nil {
		return nil, fmt.Errorf("create socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	tmpPath := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmpPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("create socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*unixSocket, error) {
		ln.Close()
		return nil, fmt.Errorf("create socket %s: %w", path, err)
	}
	if err := os.Chmod(tmpPath, mode); err != nil {
		return fail(err)
	}
	err = os.Link(tmpPath, path)
	if errors.Is(err, fs.ErrExist) && removeStaleSocket(path) {
		err = os.Link(tmpPath, path)
	}
	if err != nil {
		return fail(err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return fail(err)
	}
	return &unixSocket{UnixListener: ln, path: path, dev: st.Dev, ino: st.Ino}, nil
}

// remove closes the socket and deletes its file if path still names it.
func (u *unixSocket) remove() {
	u.Close()
	var st syscall.Stat_t
	if syscall.Lstat(u.path, &st) == nil && st.Dev == u.dev && st.Ino == u.ino {
		os.Remove(u.path)
	}
}

// removeStaleSocket deletes path if it is a socket nobody listens on and
// reports whether it did.
func removeStaleSocket(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket {
		return false
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	return os.Remove(path) == nil
}
