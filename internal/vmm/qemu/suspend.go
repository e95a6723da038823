package qemu

import (
	"context"
	"fmt"
)

// Suspend stops the guest's vCPUs (QMP stop): its memory and devices stay
// in QEMU, which then uses no CPU for it. Resume (QMP cont) continues it.
func (b *Backend) Suspend(ctx context.Context, runDir string) error {
	if _, err := lookup(runDir); err != nil {
		return fmt.Errorf("suspend vm: %w", err)
	}
	err := withQMP(ctx, runDir, func(ctx context.Context, c *QMP) error {
		return c.Execute(ctx, "stop", nil, nil)
	})
	if err != nil {
		return fmt.Errorf("suspend vm: %w", err)
	}
	return nil
}

// Suspended reports whether the guest of runDir is stopped (any status but
// running: paused by request, on an I/O error, or before a migration).
func (b *Backend) Suspended(ctx context.Context, runDir string) (bool, error) {
	s, err := status(ctx, runDir)
	if err != nil {
		return false, err
	}
	return !s.Running, nil
}
