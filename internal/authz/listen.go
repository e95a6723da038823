package authz

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"banger/internal/api"
)

// ListenUnix makes a listening Unix socket at path, mode 0600, as c: the
// socket is created by a process with c's credentials (so the kernel
// decides where c may create it, and c owns it), and only its descriptor
// comes back. A socket of c's already at path (a stale one) is replaced;
// anything else there is refused.
func ListenUnix(ctx context.Context, c Caller, path string) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, api.Errorf(api.ErrInvalid, "unix socket path %q must be absolute", path)
	}
	return oneFile(ctx, c, "listen", path, func(m message) error {
		kind := api.ErrPermission
		if m.Code == "invalid" {
			kind = api.ErrInvalid
		}
		return api.Errorf(kind, "cannot make socket %s: %s", path, m.Err)
	})
}

// RemoveSocket removes the socket of c's at path, as c; anything else
// there is left alone.
func RemoveSocket(ctx context.Context, c Caller, path string) error {
	if !filepath.IsAbs(path) {
		return api.Errorf(api.ErrInvalid, "unix socket path %q must be absolute", path)
	}
	return runAs(ctx, c, "unlink-socket", path, nil, func(m message, f *os.File) error {
		if f != nil {
			f.Close()
		}
		if m.Err != "" {
			return fmt.Errorf("remove socket %s: %s", path, m.Err)
		}
		return errStop
	})
}

// ownSocket reports whether path (not followed) is a socket owned by this
// process's effective uid.
func ownSocket(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false, err
	}
	return st.Mode&unix.S_IFMT == unix.S_IFSOCK && int(st.Uid) == os.Geteuid(), nil
}

// listenSocket is the helper's "listen": run with the caller's rights.
func listenSocket(path string, emit func(message, *os.File) error) error {
	if own, err := ownSocket(path); err == nil {
		if !own {
			return emit(message{Err: "it exists and is not a socket of yours", Code: "invalid"}, nil)
		}
		if err := unix.Unlink(path); err != nil {
			return emit(failure(err), nil)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return emit(failure(err), nil)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return emit(failure(err), nil)
	}
	sock := os.NewFile(uintptr(fd), path)
	defer sock.Close()
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return emit(failure(err), nil)
	}
	// Nobody can connect before listen: set the mode first, on the file
	// just made (opened without following a symlink).
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return emit(failure(err), nil)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return emit(message{Err: "the socket was replaced while it was made", Code: "invalid"}, nil)
	}
	if err := unix.Chmod("/proc/self/fd/"+strconv.Itoa(pfd), 0o600); err != nil {
		return emit(failure(err), nil)
	}
	if err := unix.Listen(fd, 128); err != nil {
		return emit(failure(err), nil)
	}
	dup, err := unix.Dup(fd)
	if err != nil {
		return emit(failure(err), nil)
	}
	unix.CloseOnExec(dup)
	return emit(message{}, os.NewFile(uintptr(dup), path))
}

// unlinkSocket is the helper's "unlink-socket": run with the caller's rights.
func unlinkSocket(path string, emit func(message, *os.File) error) error {
	own, err := ownSocket(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !own) {
		return emit(message{}, nil)
	}
	if err == nil {
		err = unix.Unlink(path)
	}
	if err != nil {
		return emit(failure(err), nil)
	}
	return emit(message{}, nil)
}
