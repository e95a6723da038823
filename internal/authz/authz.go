// Package authz knows who is calling the daemon and what they may touch.
//
// The daemon runs as root but acts for callers who may not be. Each request
// carries the caller's uid and gid, read from the Unix socket with
// SO_PEERCRED; a host path named in a request is opened once, by a
// short-lived child process running with the caller's credentials, which
// hands the open descriptor back (open.go): the kernel decides, and the
// daemon never opens the name itself.
package authz

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"banger/internal/api"

	"golang.org/x/sys/unix"
)

// Caller is the process on the other end of the socket.
type Caller struct {
	UID, GID, PID int
}

// Root reports whether the caller is root.
func (c Caller) Root() bool { return c.UID == 0 }

type ctxKey struct{}

// WithCaller stores c in ctx.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// CallerFrom returns the caller stored in ctx. Without one (in-process use) the
// caller is the daemon's own user.
func CallerFrom(ctx context.Context) Caller {
	if c, ok := ctx.Value(ctxKey{}).(Caller); ok {
		return c
	}
	return Caller{UID: os.Getuid(), GID: os.Getgid(), PID: os.Getpid()}
}

// PeerCredentials reads SO_PEERCRED from a Unix socket connection.
func PeerCredentials(conn net.Conn) (Caller, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return Caller{}, fmt.Errorf("peer credentials: not a unix socket (%T)", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Caller{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Caller{}, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return Caller{}, fmt.Errorf("peer credentials: %w", cerr)
	}
	return Caller{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}, nil
}

// HelperArg is the argv[1] with which the daemon binary runs as the helper
// that opens paths as the caller; cmd/bangerd calls RunHelper when it sees
// it.
const HelperArg = "__banger_access_check"

// CheckRead returns nil when the caller in ctx can open path for reading (a
// directory: list it). The open happens as the caller; nothing is kept.
func CheckRead(ctx context.Context, path string) error {
	f, err := open(ctx, path)
	if err != nil {
		return err
	}
	return f.Close()
}

// CheckWrite returns nil when the caller in ctx may write path, or create it
// in its folder. Checked by access(2) as the caller.
func CheckWrite(ctx context.Context, path string) error {
	if !filepath.IsAbs(path) {
		return api.Errorf(api.ErrInvalid, "path %q must be absolute", path)
	}
	return runAs(ctx, CallerFrom(ctx), "write", path, nil, func(m message, _ *os.File) error {
		if m.Err != "" {
			return api.Errorf(api.ErrPermission, "cannot write %s: %s", path, m.Err)
		}
		return errStop
	})
}

// Checker adapts the package functions to the small interfaces services define.
type Checker struct{}

// OpenRead implements service Authorizer interfaces.
func (Checker) OpenRead(ctx context.Context, path string) (*os.File, error) {
	return OpenRead(ctx, path)
}

// OpenDir implements service Authorizer interfaces.
func (Checker) OpenDir(ctx context.Context, path string) (*os.File, error) {
	return OpenDir(ctx, path)
}

// Walk implements service Authorizer interfaces.
func (Checker) Walk(ctx context.Context, dir string, include []string, fn func(Entry) error) error {
	return Walk(ctx, dir, include, fn)
}

// CheckRead implements service Authorizer interfaces.
func (Checker) CheckRead(ctx context.Context, path string) error { return CheckRead(ctx, path) }

func supplementaryGroups(uid int) ([]uint32, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return nil, err
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, id := range ids {
		if n, err := strconv.Atoi(id); err == nil {
			out = append(out, uint32(n))
		}
	}
	return out, nil
}

// HomeDir returns the caller's home directory from the user database.
func HomeDir(c Caller) (string, error) {
	u, err := user.LookupId(strconv.Itoa(c.UID))
	if err != nil {
		return "", fmt.Errorf("look up uid %d: %w", c.UID, err)
	}
	return u.HomeDir, nil
}
