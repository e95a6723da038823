package qemu

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"banger/internal/vmm"
)

// Adopt checks that the QEMU of runDir is alive, is really that VM's (its
// command line names runDir's pidfile) and answers query-status on its QMP
// socket. Otherwise the error wraps vmm.ErrNotRunning with the reason. It
// re-attaches the serial console reader (output while no reader was
// attached is lost; QEMU drops it).
func (b *Backend) Adopt(ctx context.Context, runDir string) (vmm.Process, error) {
	p, err := rt.Adopt(ctx, runDir, "qmp", func(ctx context.Context) error {
		_, err := status(ctx, runDir)
		return err
	})
	if err != nil {
		return vmm.Process{}, err
	}
	if err := b.attachConsole(runDir, false); err != nil {
		b.log.Warn("qemu: adopt: serial console not attached", "run_dir", runDir, "err", err)
	}
	return vmm.Process{PID: p.PID, Backend: backendName(p.Argv)}, nil
}

// Signal sends sig to the QEMU of runDir.
func (b *Backend) Signal(runDir string, sig syscall.Signal) error {
	return rt.Signal(runDir, sig)
}

// Quit stops the QEMU of runDir at once: the QMP quit command, then SIGKILL
// if it has not exited within the quit timeout; a QEMU of runDir that its
// pidfile does not name is killed. It returns once the process
// is gone, its console output is in the serial log and its pidfile and
// sockets are removed. A VM that is not running is not an error.
func (b *Backend) Quit(ctx context.Context, runDir string) error {
	defer b.consoleDrained(runDir, consoleDrainWait)
	p, err := lookup(runDir)
	if errors.Is(err, vmm.ErrNotRunning) {
		// No live pid in the pidfile: a daemon that died mid-start may
		// have left a QEMU whose pidfile is not written yet, or names the
		// pid in QEMU's own namespace. Find it by its command line.
		for _, p := range match(runDir).Find() {
			b.log.Warn("qemu: quit: killing a vmm its pidfile does not name", "pid", p.PID)
			if err := p.Kill(ctx); err != nil {
				return fmt.Errorf("quit vm: %w", err)
			}
		}
		if err := removeRuntimeFiles(runDir); err != nil {
			return fmt.Errorf("quit vm: %w", err)
		}
		return nil
	}

	qctx, cancel := context.WithTimeout(ctx, b.quitTimeout)
	err = withQMP(qctx, runDir, func(ctx context.Context, c *QMP) error { return c.Quit(ctx) })
	if err == nil {
		err = p.Wait(qctx)
	}
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("quit vm: %w", ctx.Err())
		}
		b.log.Warn("qemu: quit did not stop the vm; killing it", "pid", p.PID, "err", err)
		if err := p.Kill(ctx); err != nil {
			return fmt.Errorf("quit vm: %w", err)
		}
	}
	if err := removeRuntimeFiles(runDir); err != nil {
		return fmt.Errorf("quit vm: %w", err)
	}
	return nil
}

// Wait blocks until the QEMU of runDir has exited (at once if it is not
// running) and its last console output is in the serial log, or ctx ends.
func (b *Backend) Wait(ctx context.Context, runDir string) error {
	if err := rt.Wait(ctx, runDir); err != nil {
		return err
	}
	b.consoleDrained(runDir, consoleDrainWait)
	return nil
}

func status(ctx context.Context, runDir string) (Status, error) {
	var s Status
	err := withQMP(ctx, runDir, func(ctx context.Context, c *QMP) error {
		var err error
		s, err = c.QueryStatus(ctx)
		return err
	})
	return s, err
}

// withQMP runs fn on a fresh QMP connection to runDir's socket, all within
// qmpTimeout.
func withQMP(ctx context.Context, runDir string, fn func(context.Context, *QMP) error) error {
	ctx, cancel := context.WithTimeout(ctx, qmpTimeout)
	defer cancel()
	c, err := DialQMP(ctx, filepath.Join(runDir, QMPSocket))
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}
