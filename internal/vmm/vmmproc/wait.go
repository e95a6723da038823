package vmmproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Wait blocks until p has exited or ctx ends. Exited means done with its
// files (a zombie awaiting its parent counts, and so does a pid now running
// another program); an empty command line alone is not enough, as the
// kernel drops it early in exit. A VMM is usually not our child (the daemon
// may have restarted), so Wait cannot wait4: it polls a pidfd, which becomes
// readable once the process has exited, or /proc where pidfds are missing.
func (p Proc) Wait(ctx context.Context) error {
	pidfd, err := unix.PidfdOpen(p.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return p.waitProc(ctx)
	}
	defer unix.Close(pidfd)
	if p.Match.reused(p.PID) { // checked after the open, which pins the pid
		return nil
	}
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for pid %d: %w", p.PID, err)
		}
		if n > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait for pid %d: %w", p.PID, ctx.Err())
		}
	}
}

// waitProc is Wait by polling /proc.
func (p Proc) waitProc(ctx context.Context) error {
	for !Exited(p.PID) && !p.Match.reused(p.PID) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for pid %d: %w", p.PID, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Exited reports whether pid is gone or a zombie.
func Exited(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}
