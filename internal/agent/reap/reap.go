// Package reap lets banger's init reap every child (it is PID 1, so orphans
// are re-parented to it) without stealing the exit statuses of processes
// started through os/exec elsewhere in the agent.
//
// Rules for every exec site in the agent binary:
//   - start processes with Start (never cmd.Start/Run/Output directly),
//   - wait for them only through the returned wait function (never cmd.Wait).
//
// When Loop is running, it reaps all children with wait4(-1) and hands the
// status of each pid registered by Start to its waiter; statuses of orphans
// are dropped. When Loop is not running (tests, or "banger-agent serve" as a
// child of the image's init), Start is cmd.Start and wait is cmd.Wait.
//
// Reaping is process-wide by nature (there is one set of children per
// process), so this package keeps one registry per process. Call Loop before
// the first Start.
package reap

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
)

// registry tracks processes started by Start while Loop runs.
type registry struct {
	mu      sync.Mutex
	looping bool
	waiters map[int]chan syscall.WaitStatus
}

// std is the process-wide registry (see the package doc for why it exists).
var std = &registry{waiters: make(map[int]chan syscall.WaitStatus)}

// Start starts cmd and returns a function that waits for it to exit and for
// its I/O copying to finish. A non-zero exit or a death by signal is not an
// error: it is reported in the returned status. The wait function must be
// called exactly once (it releases the command's resources).
func Start(cmd *exec.Cmd) (wait func() (syscall.WaitStatus, error), err error) {
	return std.start(cmd)
}

// Loop reaps children until ctx ends. Only the process that adopts orphans
// (PID 1, or a PR_SET_CHILD_SUBREAPER process) should run it. It returns once
// ctx is done; after that, Start falls back to plain cmd.Wait for new
// commands.
func Loop(ctx context.Context) {
	std.loop(ctx)
}

// Running reports whether Loop is active in this process.
func Running() bool {
	std.mu.Lock()
	defer std.mu.Unlock()
	return std.looping
}

func (r *registry) start(cmd *exec.Cmd) (func() (syscall.WaitStatus, error), error) {
	// Hold the lock across fork and registration so that Loop cannot reap
	// the child before its waiter is known.
	r.mu.Lock()
	if !r.looping {
		r.mu.Unlock()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return func() (syscall.WaitStatus, error) { return plainWait(cmd) }, nil
	}
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[cmd.Process.Pid] = ch
	r.mu.Unlock()

	return func() (syscall.WaitStatus, error) {
		status := <-ch
		// The process is already reaped: cmd.Wait only finishes the I/O
		// copying goroutines and closes pipes. Its wait syscall fails with
		// ECHILD (os/exec uses a pidfd, so a recycled pid is never waited).
		err := cmd.Wait()
		if err != nil && !errors.Is(err, syscall.ECHILD) {
			return status, err
		}
		return status, nil
	}, nil
}

// plainWait is cmd.Wait with the exit status returned instead of an ExitError.
func plainWait(cmd *exec.Cmd) (syscall.WaitStatus, error) {
	err := cmd.Wait()
	var status syscall.WaitStatus
	if cmd.ProcessState != nil {
		status, _ = cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		err = nil
	}
	return status, err
}

func (r *registry) loop(ctx context.Context) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)

	r.mu.Lock()
	r.looping = true
	r.mu.Unlock()
	defer r.stop()

	r.reapAll()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigs:
			r.reapAll()
		}
	}
}

// stop ends looping mode. Children still registered get a dedicated blocking
// wait4 on their own pid, so their waiters are still answered.
func (r *registry) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.looping = false
	for pid, ch := range r.waiters {
		delete(r.waiters, pid)
		go func() {
			for {
				var status syscall.WaitStatus
				_, err := syscall.Wait4(pid, &status, 0, nil)
				if errors.Is(err, syscall.EINTR) {
					continue
				}
				if err != nil {
					status = syscall.WaitStatus(0xff << 8) // unknown: report exit 255
				}
				ch <- status
				return
			}
		}()
	}
}

// reapAll collects every exited child and delivers registered statuses.
// SIGCHLD signals coalesce, so it drains until no child is left waitable.
func (r *registry) reapAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- status
		}
	}
}
