package vmm

import "context"

// Suspender is a backend that can stop a guest's vCPUs with its memory and
// devices kept in the VMM (the host CPU is freed) and continue it later.
// Callers type-assert a Backend to it; a backend without it cannot suspend.
type Suspender interface {
	// Suspend stops the guest's vCPUs of the VMM of runDir.
	Suspend(ctx context.Context, runDir string) error
	// Resume continues a guest stopped by Suspend.
	Resume(ctx context.Context, runDir string) error
	// Suspended reports whether the VMM of runDir has its guest stopped.
	Suspended(ctx context.Context, runDir string) (bool, error)
}
