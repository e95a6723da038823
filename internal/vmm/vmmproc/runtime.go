package vmmproc

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"banger/internal/vmm"
)

// Runtime finds the VMM of a run directory the way one backend records it:
// the pidfile's name and how its process is recognised. It carries the
// plumbing every backend shares (signal, wait, adopt).
type Runtime struct {
	PIDFile string
	Match   func(runDir string) Match
}

// Lookup finds the live VMM recorded in runDir's pidfile. When there is
// none, the error wraps vmm.ErrNotRunning and says why.
func (r Runtime) Lookup(runDir string) (Proc, error) {
	return Lookup(runDir, r.PIDFile, r.Match(runDir))
}

// Signal sends sig to the VMM of runDir.
func (r Runtime) Signal(runDir string, sig syscall.Signal) error {
	p, err := r.Lookup(runDir)
	if err == nil {
		err = p.Signal(sig)
	}
	if err != nil {
		return fmt.Errorf("signal vm: %w", err)
	}
	return nil
}

// Wait blocks until the VMM of runDir has exited (at once if it is not
// running) or ctx ends.
func (r Runtime) Wait(ctx context.Context, runDir string) error {
	p, err := r.Lookup(runDir)
	if errors.Is(err, vmm.ErrNotRunning) {
		return nil
	}
	if err := p.Wait(ctx); err != nil {
		return fmt.Errorf("wait for vm: %w", err)
	}
	return nil
}

// Adopt checks that the VMM of runDir is alive, is really that VM's (see
// Lookup) and answers on its control socket (answer, named by control in
// errors). Otherwise the error wraps vmm.ErrNotRunning with the reason.
func (r Runtime) Adopt(ctx context.Context, runDir, control string, answer func(context.Context) error) (Proc, error) {
	p, err := r.Lookup(runDir)
	if err != nil {
		return Proc{}, fmt.Errorf("adopt vm: %w", err)
	}
	if err := answer(ctx); err != nil {
		if ctx.Err() != nil {
			return Proc{}, fmt.Errorf("adopt vm: %w", ctx.Err())
		}
		return Proc{}, fmt.Errorf("adopt vm: %w: pid %d does not answer on %s: %w", vmm.ErrNotRunning, p.PID, control, err)
	}
	return p, nil
}
