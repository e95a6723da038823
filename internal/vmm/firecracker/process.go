package firecracker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/vmm"
)

// proc is the live Firecracker process of a run directory.
type proc struct {
	pid  int
	sock string // its API socket
}

// lookup finds the live Firecracker recorded in runDir's pidfile: the pid
// must run a program named firecracker started with --api-sock on runDir's
// socket. When there is none, the error wraps vmm.ErrNotRunning and says why.
func lookup(runDir string) (proc, error) {
	pidPath := filepath.Join(runDir, PIDFile)
	sock := filepath.Join(runDir, APISocket)
	pid, err := readPIDFile(pidPath)
	if errors.Is(err, fs.ErrNotExist) {
		return proc{}, fmt.Errorf("%w: no pidfile in %s", vmm.ErrNotRunning, runDir)
	}
	if err != nil {
		return proc{}, fmt.Errorf("%w: %w", vmm.ErrNotRunning, err)
	}
	argv, err := procArgv(pid)
	if err != nil || len(argv) == 0 {
		return proc{}, fmt.Errorf("%w: pid %d from %s has exited", vmm.ErrNotRunning, pid, pidPath)
	}
	if !isFirecrackerOf(argv, sock) {
		return proc{}, fmt.Errorf("%w: pid %d is not the firecracker of %s (pid reused)", vmm.ErrNotRunning, pid, runDir)
	}
	return proc{pid: pid, sock: sock}, nil
}

func readPIDFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pidfile %s: %q", path, bytes.TrimSpace(data))
	}
	return pid, nil
}

// writePIDFile writes pid to path atomically (readers never see a partial file).
func writePIDFile(path string, pid int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o640); err != nil {
		return fmt.Errorf("write pidfile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write pidfile: %w", err)
	}
	return nil
}

// procArgv reads /proc/PID/cmdline; a zombie has an empty one.
func procArgv(pid int) ([]string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSuffix(data, []byte{0})
	if len(data) == 0 {
		return nil, nil
	}
	return strings.Split(string(data), "\x00"), nil
}

// isFirecrackerOf reports whether argv is a firecracker serving its API on sock.
func isFirecrackerOf(argv []string, sock string) bool {
	if len(argv) == 0 || !strings.Contains(filepath.Base(argv[0]), "firecracker") {
		return false
	}
	want := filepath.Clean(sock)
	for i, a := range argv[1:] {
		if v, ok := strings.CutPrefix(a, "--api-sock="); ok {
			return filepath.Clean(v) == want
		}
		if a == "--api-sock" {
			return i+2 < len(argv) && filepath.Clean(argv[i+2]) == want
		}
	}
	return false
}

// alive reports whether pid still runs the firecracker of sock (not exited,
// not a zombie, not reused).
func alive(pid int, sock string) bool {
	argv, err := procArgv(pid)
	return err == nil && isFirecrackerOf(argv, sock)
}

// reused reports whether pid now runs another program than the firecracker of sock.
func reused(pid int, sock string) bool {
	argv, err := procArgv(pid)
	return err == nil && len(argv) > 0 && !isFirecrackerOf(argv, sock)
}

// exited reports whether pid is gone or a zombie.
func exited(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}

// signalPID sends sig to pid if it still is the firecracker of sock (ESRCH
// otherwise). Through a pidfd, the check and the signal hit the same process
// even if the pid is reused meanwhile.
func signalPID(pid int, sock string, sig syscall.Signal) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if !alive(pid, sock) {
			return unix.ESRCH
		}
		return unix.Kill(pid, sig)
	}
	defer unix.Close(fd)
	if !alive(pid, sock) {
		return unix.ESRCH
	}
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// waitExit blocks until pid, the firecracker of sock, has exited or ctx
// ends. A zombie counts as exited. Firecracker is usually not our child (the
// daemon may have restarted), so it polls a pidfd, which becomes readable
// once the process has exited, or /proc where pidfds are missing.
func waitExit(ctx context.Context, pid int, sock string) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return waitExitProc(ctx, pid, sock)
	}
	defer unix.Close(pidfd)
	if reused(pid, sock) { // checked after the open, which pins the pid
		return nil
	}
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		if n > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait for pid %d: %w", pid, ctx.Err())
		}
	}
}

// waitExitProc is waitExit by polling /proc.
func waitExitProc(ctx context.Context, pid int, sock string) error {
	for !exited(pid) && !reused(pid, sock) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for pid %d: %w", pid, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// killWait sends SIGKILL to pid, the firecracker of sock, and waits until it is gone.
func killWait(ctx context.Context, pid int, sock string) error {
	if err := signalPID(pid, sock, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill pid %d: %w", pid, err)
	}
	return waitExit(ctx, pid, sock)
}

// removeRuntimeFiles deletes the pidfile and API socket of runDir.
func removeRuntimeFiles(runDir string) error {
	var errs []error
	for _, name := range []string{PIDFile, PIDFile + ".tmp", APISocket} {
		if err := os.Remove(filepath.Join(runDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
