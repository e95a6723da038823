package firecracker

import (
	"context"
	"fmt"
	"syscall"

	"banger/internal/vmm"
)

// Adopt checks that the firecracker of runDir is alive, is really that VM's
// (its command line names runDir's API socket) and answers GET / on that
// socket. Otherwise the error wraps vmm.ErrNotRunning with the reason.
func (b *Backend) Adopt(ctx context.Context, runDir string) (vmm.Process, error) {
	p, err := rt.Adopt(ctx, runDir, "its api socket", func(ctx context.Context) error {
		_, err := instanceInfo(ctx, apiSocket(runDir))
		return err
	})
	if err != nil {
		return vmm.Process{}, err
	}
	return vmm.Process{PID: p.PID, Backend: Name}, nil
}

// Signal sends sig to the firecracker of runDir.
func (b *Backend) Signal(runDir string, sig syscall.Signal) error {
	return rt.Signal(runDir, sig)
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
	return rt.Wait(ctx, runDir)
}

func instanceInfo(ctx context.Context, sock string) (InstanceInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	return NewClient(sock).InstanceInfo(ctx)
}
