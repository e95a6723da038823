// Package authz knows who is calling the daemon and what they may touch.
//
// The daemon runs as root but acts for callers who may not be. Each request
// carries the caller's uid and gid, read from the Unix socket with
// SO_PEERCRED; a host path named in a request is used only if that caller
// could read (or write) it themselves, which is checked by the kernel itself
// in a short-lived child process running with the caller's credentials.
package authz

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

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

// Access modes for Check.
const (
	Read  = unix.R_OK
	Write = unix.W_OK
)

// HelperArg is the argv[1] with which the daemon binary runs as the access
// checker; cmd/bangerd calls RunHelper when it sees it.
const HelperArg = "__banger_access_check"

// CheckRead returns nil when the caller in ctx may read path (and, for a
// directory, list it).
func CheckRead(ctx context.Context, path string) error { return check(ctx, path, Read) }

// CheckWrite returns nil when the caller in ctx may write path.
func CheckWrite(ctx context.Context, path string) error { return check(ctx, path, Write) }

// Checker adapts the package functions to the small interfaces services define.
type Checker struct{}

// CheckRead implements service Authorizer interfaces.
func (Checker) CheckRead(ctx context.Context, path string) error { return CheckRead(ctx, path) }

// CheckWrite implements service Authorizer interfaces.
func (Checker) CheckWrite(ctx context.Context, path string) error { return CheckWrite(ctx, path) }

func check(ctx context.Context, path string, mode uint32) error {
	if !filepath.IsAbs(path) {
		return api.Errorf(api.ErrInvalid, "path %q must be absolute", path)
	}
	st, err := os.Stat(path)
	if err != nil && !(mode == Write && os.IsNotExist(err)) {
		if os.IsNotExist(err) {
			return api.Errorf(api.ErrNotFound, "%s does not exist", path)
		}
		return api.Errorf(api.ErrInvalid, "%s: %w", path, err)
	}
	if st != nil && st.IsDir() && mode == Read {
		mode |= unix.X_OK
	}
	target := path
	if st == nil { // writing a new file: the caller must be able to write its folder
		target, mode = filepath.Dir(path), Write|unix.X_OK
	}
	c := CallerFrom(ctx)
	if c.UID == os.Getuid() {
		if err := unix.Access(target, mode); err != nil {
			return api.Errorf(api.ErrPermission, "%s: %v", target, err)
		}
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("access check: %w", err)
	}
	// The child starts as root (so it can always run this binary) and takes
	// the caller's groups, gid and uid before calling access(2).
	groups, _ := supplementaryGroups(c.UID)
	args := []string{HelperArg, strconv.Itoa(int(mode)), target, strconv.Itoa(c.UID), strconv.Itoa(c.GID)}
	for _, g := range groups {
		args = append(args, strconv.Itoa(int(g)))
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = []string{}
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := string(out)
		if msg == "" {
			msg = err.Error()
		}
		return api.Errorf(api.ErrPermission, "uid %d may not %s %s: %s", c.UID, modeWord(mode), target, trim(msg))
	}
	return nil
}

// RunHelper is the child side of the check: it drops to the caller's
// credentials (args: mode path uid gid [groups...]) and calls access(2),
// which then checks with the caller's real ids.
func RunHelper(args []string) int {
	if len(args) < 4 {
		return 2
	}
	nums := make([]int, 0, len(args)-2)
	for _, a := range append([]string{args[0]}, args[2:]...) {
		n, err := strconv.Atoi(a)
		if err != nil {
			return 2
		}
		nums = append(nums, n)
	}
	mode, uid, gid, groups := nums[0], nums[1], nums[2], nums[3:]
	if err := syscall.Setgroups(groups); err != nil {
		fmt.Fprint(os.Stderr, "setgroups: ", err.Error())
		return 1
	}
	if err := syscall.Setgid(gid); err != nil {
		fmt.Fprint(os.Stderr, "setgid: ", err.Error())
		return 1
	}
	if err := syscall.Setuid(uid); err != nil {
		fmt.Fprint(os.Stderr, "setuid: ", err.Error())
		return 1
	}
	if err := unix.Access(args[1], uint32(mode)); err != nil {
		fmt.Fprint(os.Stderr, err.Error())
		return 1
	}
	return 0
}

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

func modeWord(mode uint32) string {
	if mode&Write != 0 {
		return "write"
	}
	return "read"
}

func trim(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
