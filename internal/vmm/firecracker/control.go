package firecracker

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"banger/internal/vmm"
)

// Adopt checks that the firecracker of runDir is alive, is really that VM's
// (its command line names runDir's API socket) and answers GET / on that
// socket. Otherwise the error wraps vmm.ErrNotRunning with the reason.
func (b *Backend) Adopt(ctx context.Context, runDir string) (vmm.Process, error) {
	p, err := lookup(runDir)
	if err != nil {
		return vmm.Process{}, fmt.Errorf("adopt vm: %w", err)
	}
	if _, err := instanceInfo(ctx, apiSocket(runDir)); err != nil {
		if ctx.Err() != nil {
			return vmm.Process{}, fmt.Errorf("adopt vm: %w", ctx.Err())
		}
		return vmm.Process{}, fmt.Errorf("adopt vm: %w: pid %d does not answer on its api socket: %w", vmm.ErrNotRunning, p.PID, err)
	}
	return vmm.Process{PID: p.PID, Backend: Name}, nil
}

// Info runs GET / (instance information) on the API socket of runDir.
func (b *Backend) Info(ctx context.Context, runDir string) (InstanceInfo, error) {
	if _, err := lookup(runDir); err != nil {
		return InstanceInfo{}, fmt.Errorf("vm info: %w", err)
	}
	info, err := instanceInfo(ctx, apiSocket(runDir))
	if err != nil {
		return InstanceInfo{}, fmt.Errorf("vm info: %w", err)
	}
	return info, nil
}

// Powerdown sends Ctrl-Alt-Del to the guest (SendCtrlAltDel), which banger's
// init turns into a clean power-off, and returns without waiting; use Wait
// to see firecracker exit. The guest kernel needs the i8042 driver
// (CONFIG_SERIO_I8042, CONFIG_KEYBOARD_ATKBD) to see the keys.
func (b *Backend) Powerdown(ctx context.Context, runDir string) error {
	if _, err := lookup(runDir); err != nil {
		return fmt.Errorf("power down vm: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	if err := NewClient(apiSocket(runDir)).Action(ctx, ActionSendCtrlAltDel); err != nil {
		return fmt.Errorf("power down vm: %w", err)
	}
	return nil
}

// Stop powers the guest down (Powerdown), waits up to the stop timeout for
// firecracker to exit, then kills it (Quit). It returns once the process is
// gone and its pidfile and socket are removed. A VM that is not running is
// not an error.
func (b *Backend) Stop(ctx context.Context, runDir string) error {
	p, err := lookup(runDir)
	if err != nil {
		return b.Quit(ctx, runDir)
	}
	sctx, cancel := context.WithTimeout(ctx, b.stopTimeout)
	err = b.Powerdown(sctx, runDir)
	if err == nil {
		err = p.Wait(sctx)
	}
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stop vm: %w", ctx.Err())
		}
		b.log.Warn("firecracker: guest did not power off; killing it", "pid", p.PID, "err", err)
	}
	if err := b.Quit(ctx, runDir); err != nil {
		return fmt.Errorf("stop vm: %w", err)
	}
	return nil
}

// Signal sends sig to the firecracker of runDir.
func (b *Backend) Signal(runDir string, sig syscall.Signal) error {
	p, err := lookup(runDir)
	if err == nil {
		err = p.Signal(sig)
	}
	if err != nil {
		return fmt.Errorf("signal vm: %w", err)
	}
	return nil
}

// Quit stops the firecracker of runDir at once (SIGKILL; the guest gets no
// say) and returns once the process is gone and its pidfile and socket are
// removed. A VM that is not running is not an error.
func (b *Backend) Quit(ctx context.Context, runDir string) error {
	p, err := lookup(runDir)
	if err == nil {
		if err := p.Kill(ctx); err != nil {
			return fmt.Errorf("quit vm: %w", err)
		}
	}
	if err := removeRuntimeFiles(runDir); err != nil {
		return fmt.Errorf("quit vm: %w", err)
	}
	return nil
}

// Wait blocks until the firecracker of runDir has exited (at once if it is
// not running) or ctx ends.
func (b *Backend) Wait(ctx context.Context, runDir string) error {
	p, err := lookup(runDir)
	if errors.Is(err, vmm.ErrNotRunning) {
		return nil
	}
	if err := p.Wait(ctx); err != nil {
		return fmt.Errorf("wait for vm: %w", err)
	}
	return nil
}

func instanceInfo(ctx context.Context, sock string) (InstanceInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	return NewClient(sock).InstanceInfo(ctx)
}
