package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"banger/internal/api"

	"golang.org/x/sys/unix"
)

// A host path named in a request is opened exactly once, by a short-lived
// child process running with the caller's uid, gid and groups; the open
// descriptor comes back to the daemon over a socket pair (SCM_RIGHTS) and the
// daemon only ever uses that descriptor. So the kernel decides what the
// caller may read (ACLs included), a symlink is followed with the caller's
// rights, and swapping the file afterwards changes nothing: the daemon never
// opens, stats or follows the name itself. A caller learns nothing about a
// path beyond what the open as them returns.

// maxMsg bounds one message from the child (a JSON header).
const maxMsg = 8192

// maxRelPath bounds a path inside a walked tree.
const maxRelPath = 4096

// message is one packet from the child; a descriptor may ride along.
type message struct {
	Path string `json:"path,omitempty"` // walk: path inside the tree
	Dir  bool   `json:"dir,omitempty"`  // walk: a directory (no descriptor)
	Err  string `json:"err,omitempty"`  // failure, as the caller saw it
	Code string `json:"code,omitempty"` // "notfound" or "denied"
	End  bool   `json:"end,omitempty"`  // last message of a walk
}

// OpenRead opens path for reading as the caller in ctx and returns the open
// file, which must be a regular file.
func OpenRead(ctx context.Context, path string) (*os.File, error) {
	f, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, api.Errorf(api.ErrInvalid, "%s is not a regular file", path)
	}
	return f, nil
}

// OpenDir opens the directory path as the caller in ctx (who must be able
// to list it).
func OpenDir(ctx context.Context, path string) (*os.File, error) {
	f, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !fi.IsDir() {
		f.Close()
		return nil, api.Errorf(api.ErrInvalid, "%s is not a directory", path)
	}
	return f, nil
}

// open opens path (file or directory) as the caller.
func open(ctx context.Context, path string) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, api.Errorf(api.ErrInvalid, "path %q must be absolute", path)
	}
	return oneFile(ctx, CallerFrom(ctx), "open", path, func(m message) error { return cannotRead(path, m) })
}

// oneFile runs op on path as c and returns the one descriptor the helper
// sends; refuse turns the helper's error answer into the caller's error.
func oneFile(ctx context.Context, c Caller, op, path string, refuse func(message) error) (*os.File, error) {
	var got *os.File
	err := runAs(ctx, c, op, path, nil, func(m message, f *os.File) error {
		if m.Err != "" {
			if f != nil {
				f.Close()
			}
			return refuse(m)
		}
		if f == nil || got != nil {
			if f != nil {
				f.Close()
			}
			return fmt.Errorf("%s %s: unexpected answer from the helper", op, path)
		}
		got = f
		return errStop
	})
	if err != nil {
		if got != nil {
			got.Close()
		}
		return nil, err
	}
	if got == nil {
		return nil, fmt.Errorf("%s %s: no answer from the helper", op, path)
	}
	return got, nil
}

// cannotRead is the one error a caller gets for a path they cannot open:
// what the kernel told the caller's own process, nothing more.
func cannotRead(path string, m message) error {
	kind := api.ErrPermission
	if m.Code == "notfound" {
		kind = api.ErrNotFound
	}
	return api.Errorf(kind, "cannot read %s: %s", path, m.Err)
}

// errStop ends the reading of messages early without an error.
var errStop = errors.New("stop")

// runAs runs op on path in a child with the caller's credentials (in this
// process when the caller is this process's user) and hands each message to
// fn, which owns any descriptor it gets.
func runAs(ctx context.Context, c Caller, op, path string, include []string, fn func(message, *os.File) error) error {
	if c.UID == os.Getuid() {
		err := serve(op, path, include, fn)
		if errors.Is(err, errStop) {
			return nil
		}
		return err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("helper socket: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "authz")
	theirs := os.NewFile(uintptr(fds[1]), "authz-child")
	defer mine.Close()
	self, err := os.Executable()
	if err != nil {
		theirs.Close()
		return fmt.Errorf("helper: %w", err)
	}
	// The child starts as root (so it can always run this binary) and takes
	// the caller's groups, gid and uid before touching path.
	groups, _ := supplementaryGroups(c.UID)
	gs := make([]string, len(groups))
	for i, g := range groups {
		gs[i] = strconv.Itoa(int(g))
	}
	args := append([]string{HelperArg, op, strconv.Itoa(c.UID), strconv.Itoa(c.GID), strings.Join(gs, ","), path}, include...)
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = []string{}
	cmd.ExtraFiles = []*os.File{theirs}
	var stderr strings.Builder
	cmd.Stderr = &capped{b: &stderr, n: 4096}
	if err := cmd.Start(); err != nil {
		theirs.Close()
		return fmt.Errorf("helper: %w", err)
	}
	theirs.Close()
	loopErr := receive(mine, fn)
	if loopErr != nil {
		cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	if loopErr != nil && !errors.Is(loopErr, errStop) {
		return loopErr
	}
	if loopErr == nil && waitErr != nil {
		return fmt.Errorf("helper for uid %d: %w: %s", c.UID, waitErr, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// receive reads messages from the child until the end of the stream or
// until fn says stop.
func receive(sock *os.File, fn func(message, *os.File) error) error {
	buf := make([]byte, maxMsg)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, flags, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			return fmt.Errorf("helper: %w", err)
		}
		var files []*os.File
		if oobn > 0 {
			files, err = parseRights(oob[:oobn])
			if err != nil {
				return err
			}
		}
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || len(files) > 1 {
			closeAll(files)
			return errors.New("helper: oversized message")
		}
		if n == 0 && oobn == 0 {
			return nil // child closed its end
		}
		var m message
		if err := json.Unmarshal(buf[:n], &m); err != nil {
			closeAll(files)
			return fmt.Errorf("helper: bad message: %w", err)
		}
		var f *os.File
		if len(files) == 1 {
			f = files[0]
		}
		if m.End {
			closeAll(files)
			return nil
		}
		if err := fn(m, f); err != nil {
			return err
		}
	}
}

func parseRights(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("helper: %w", err)
	}
	var files []*os.File
	for _, cm := range msgs {
		fds, err := unix.ParseUnixRights(&cm)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "caller-file"))
		}
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// RunHelper is the child side: args are op uid gid groups path [include...].
// It drops to the caller's credentials, does op and sends the results on
// descriptor 3.
func RunHelper(args []string) int {
	if len(args) < 5 {
		fmt.Fprintln(os.Stderr, "usage: op uid gid groups path [include...]")
		return 2
	}
	uid, err1 := strconv.Atoi(args[1])
	gid, err2 := strconv.Atoi(args[2])
	if err1 != nil || err2 != nil {
		return 2
	}
	var groups []int
	if args[3] != "" {
		for _, g := range strings.Split(args[3], ",") {
			n, err := strconv.Atoi(g)
			if err != nil {
				return 2
			}
			groups = append(groups, n)
		}
	}
	if err := dropTo(uid, gid, groups); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sock := os.NewFile(3, "authz")
	err := serve(args[0], args[4], args[5:], func(m message, f *os.File) error {
		return send(sock, m, f)
	})
	if err == nil || errors.Is(err, errStop) {
		err = send(sock, message{End: true}, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// dropTo takes the caller's groups, gid and uid, in that order.
func dropTo(uid, gid int, groups []int) error {
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	return nil
}

// send writes one message with an optional descriptor, then closes it.
func send(sock *os.File, m message, f *os.File) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if f != nil {
		defer f.Close()
		oob = unix.UnixRights(int(f.Fd()))
	}
	return unix.Sendmsg(int(sock.Fd()), data, oob, nil, 0)
}

// serve does op on path with this process's credentials, emitting messages.
func serve(op, path string, include []string, emit func(message, *os.File) error) error {
	switch op {
	case "open":
		f, err := openFlags(path)
		if err != nil {
			return emit(failure(err), nil)
		}
		return emit(message{}, f)
	case "walk":
		return walk(path, include, emit)
	case "write":
		return emit(checkWrite(path), nil)
	case "listen":
		return listenSocket(path, emit)
	case "unlink-socket":
		return unlinkSocket(path, emit)
	}
	return fmt.Errorf("unknown helper operation %q", op)
}

// openFlags opens path read-only without blocking on a FIFO and without
// making it a controlling terminal.
func openFlags(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// Reads from regular files and directories never block; clear the
	// flag so the daemon reads normally.
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// failure describes an error as the caller's process saw it.
func failure(err error) message {
	m := message{Err: errText(err), Code: "denied"}
	if errors.Is(err, fs.ErrNotExist) {
		m.Code = "notfound"
	}
	return m
}

// errText is the bare errno text ("permission denied").
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// capped keeps the first n bytes written.
type capped struct {
	b *strings.Builder
	n int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.n - c.b.Len(); room > 0 {
		if len(p) > room {
			c.b.Write(p[:room])
		} else {
			c.b.Write(p)
		}
	}
	return len(p), nil
}
