package qemu

import (
	"context"
	"fmt"
)

// A write that fails because the host filesystem is full stops the VM:
// QEMU's default write-error policy for -drive is werror=enospc, so the guest
// never sees the error and its data is kept; QEMU retries the write on
// "cont". query-status then says "io-error" and the disk's io-status
// "nospace".

// Reasons IOPaused gives.
const (
	ReasonDiskFull = "host disk full"
	ReasonIOError  = "host disk I/O error"
)

// IOPaused reports why QEMU stopped the VM of runDir on a host I/O error
// (ReasonDiskFull or ReasonIOError), or "" when it did not.
func (b *Backend) IOPaused(ctx context.Context, runDir string) (string, error) {
	if _, err := lookup(runDir); err != nil {
		return "", fmt.Errorf("vm status: %w", err)
	}
	var reason string
	err := withQMP(ctx, runDir, func(ctx context.Context, c *QMP) error {
		var err error
		reason, err = c.IOPauseReason(ctx)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("vm status: %w", err)
	}
	return reason, nil
}

// Resume continues the VM of runDir after an I/O-error pause; QEMU retries
// the writes that failed.
func (b *Backend) Resume(ctx context.Context, runDir string) error {
	if _, err := lookup(runDir); err != nil {
		return fmt.Errorf("resume vm: %w", err)
	}
	err := withQMP(ctx, runDir, func(ctx context.Context, c *QMP) error {
		return c.Execute(ctx, "cont", nil, nil)
	})
	if err != nil {
		return fmt.Errorf("resume vm: %w", err)
	}
	return nil
}

// blockInfo is the part of a query-block entry IOPauseReason reads.
type blockInfo struct {
	Device   string `json:"device"`
	IOStatus string `json:"io-status"` // "ok", "failed" or "nospace"
}

// IOPauseReason runs query-status and, when the VM stopped on an I/O error,
// query-block to tell a full host filesystem from other errors.
func (c *QMP) IOPauseReason(ctx context.Context) (string, error) {
	s, err := c.QueryStatus(ctx)
	if err != nil || s.Status != "io-error" {
		return "", err
	}
	var blocks []blockInfo
	if err := c.Execute(ctx, "query-block", nil, &blocks); err != nil {
		return ReasonIOError, nil
	}
	for _, b := range blocks {
		if b.IOStatus == "nospace" {
			return ReasonDiskFull, nil
		}
	}
	return ReasonIOError, nil
}
