package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/vmm"
)

// qmpTimeout bounds one QMP exchange made on behalf of a caller.
const qmpTimeout = 5 * time.Second

// proc is the live QEMU process of a run directory.
type proc struct {
	pid  int
	argv []string
}

// lookup finds the live QEMU recorded in runDir's pidfile. When there is
// none, the error wraps vmm.ErrNotRunning and says why.
func lookup(runDir string) (proc, error) {
	pidPath := filepath.Join(runDir, PIDFile)
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
	if !isQEMUOf(argv, pidPath) {
		return proc{}, fmt.Errorf("%w: pid %d is not the qemu of %s (pid reused)", vmm.ErrNotRunning, pid, runDir)
	}
	return proc{pid: pid, argv: argv}, nil
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

// isQEMUOf reports whether argv is a QEMU started with -pidfile pidPath.
func isQEMUOf(argv []string, pidPath string) bool {
	if len(argv) == 0 || !strings.Contains(filepath.Base(argv[0]), "qemu") {
		return false
	}
	i := slices.Index(argv, "-pidfile")
	return i >= 0 && i+1 < len(argv) && filepath.Clean(argv[i+1]) == filepath.Clean(pidPath)
}

// backendName tells KVM from TCG runs by their argv.
func backendName(argv []string) string {
	for i, a := range argv {
		if a == "-accel" && i+1 < len(argv) && strings.HasPrefix(argv[i+1], "kvm") {
			return NameKVM
		}
	}
	return NameTCG
}

// findQEMUs lists the processes started with -pidfile pidPath, whether or not
// they got to write it (used to clean up after a failed start).
func findQEMUs(pidPath string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if argv, err := procArgv(pid); err == nil && isQEMUOf(argv, pidPath) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid still runs the QEMU of pidPath (not exited, not
// a zombie, not reused).
func alive(pid int, pidPath string) bool {
	argv, err := procArgv(pid)
	return err == nil && isQEMUOf(argv, pidPath)
}

// waitExit blocks until pid, the QEMU of pidPath, has exited or ctx ends.
// Exited means done with its files (a zombie awaiting init counts); an empty
// cmdline alone is not enough, as the kernel drops it early in exit. It
// cannot wait4 (QEMU is not our child): it polls a pidfd, which becomes
// readable once the process has exited, or /proc where pidfds are missing.
func waitExit(ctx context.Context, pid int, pidPath string) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return waitExitProc(ctx, pid, pidPath)
	}
	defer unix.Close(pidfd)
	if reused(pid, pidPath) { // checked after the open, which pins the pid
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
func waitExitProc(ctx context.Context, pid int, pidPath string) error {
	for !exited(pid) && !reused(pid, pidPath) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for pid %d: %w", pid, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
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

// reused reports whether pid now runs another program than the QEMU of pidPath.
func reused(pid int, pidPath string) bool {
	argv, err := procArgv(pid)
	return err == nil && len(argv) > 0 && !isQEMUOf(argv, pidPath)
}

// removeRuntimeFiles deletes the pidfile and QMP socket of runDir.
func removeRuntimeFiles(runDir string) error {
	var errs []error
	for _, name := range []string{PIDFile, QMPSocket} {
		if err := os.Remove(filepath.Join(runDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
