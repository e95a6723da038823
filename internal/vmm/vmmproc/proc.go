package vmmproc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"banger/internal/vmm"
)

// Proc is a VMM process found by its Match.
type Proc struct {
	PID   int
	Argv  []string // its command line when it was found
	Match Match
}

// Lookup finds the live process named by the pidfile runDir/pidFile, which m
// must recognise. When there is none, the error wraps vmm.ErrNotRunning and
// says why: no pidfile, a bad one, the pid has exited, or it runs another
// program (pid reused).
func Lookup(runDir, pidFile string, m Match) (Proc, error) {
	pidPath := filepath.Join(runDir, pidFile)
	pid, err := ReadPIDFile(pidPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Proc{}, fmt.Errorf("%w: no pidfile in %s", vmm.ErrNotRunning, runDir)
	}
	if err != nil {
		return Proc{}, fmt.Errorf("%w: %w", vmm.ErrNotRunning, err)
	}
	argv, err := Argv(pid)
	if err != nil || len(argv) == 0 {
		return Proc{}, fmt.Errorf("%w: pid %d from %s has exited", vmm.ErrNotRunning, pid, pidPath)
	}
	if !m.Of(argv) {
		return Proc{}, fmt.Errorf("%w: pid %d is not the %s of %s (pid reused)", vmm.ErrNotRunning, pid, m.Program, runDir)
	}
	return Proc{PID: pid, Argv: argv, Match: m}, nil
}

// Signal sends sig to p if it still is p.Match's process; otherwise the
// error wraps vmm.ErrNotRunning. Through a pidfd, the check and the signal
// hit the same process even if the pid is reused meanwhile.
func (p Proc) Signal(sig syscall.Signal) error {
	if err := p.signal(sig); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("%w: pid %d has exited", vmm.ErrNotRunning, p.PID)
		}
		return fmt.Errorf("pid %d: %w", p.PID, err)
	}
	return nil
}

// signal is Signal with ESRCH for a process that is gone or reused.
func (p Proc) signal(sig syscall.Signal) error {
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		if !p.Match.Alive(p.PID) {
			return unix.ESRCH
		}
		return unix.Kill(p.PID, sig)
	}
	defer unix.Close(fd)
	if !p.Match.Alive(p.PID) {
		return unix.ESRCH
	}
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// Kill sends SIGKILL to p and waits until it has exited (see Wait). A
// process already gone is not an error.
func (p Proc) Kill(ctx context.Context) error {
	if err := p.signal(unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill pid %d: %w", p.PID, err)
	}
	return p.Wait(ctx)
}
