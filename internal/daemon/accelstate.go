package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"banger/internal/api"
	"banger/internal/vmm/qemu"
)

// accelState is the accelerator the daemon starts VMs under, and why. A
// choice made before any kernel was stored is provisional: when a kernel is
// stored it is decided again (now the probe can run) and, when the answer
// differs, the backend is switched for the VMs started from then on.
type accelState struct {
	decide func(ctx context.Context) (accelChoice, error) // nil: final
	use    func(kvm bool) error                           // switches the backend
	name   func() string                                  // the backend's name now
	log    *slog.Logger

	redo sync.Mutex // one re-decision at a time

	mu     sync.Mutex
	choice accelChoice
}

// Get is the accelerator ("kvm" or "tcg") and why.
func (a *accelState) Get() (name, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.choice.Name(), a.choice.Reason
}

// ReasonFor is why a VM just started by the backend named backend runs
// under its accelerator: the current reason when backend is the backend's
// name now, "" when the choice changed since (the VM started before).
func (a *accelState) ReasonFor(backend string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.name == nil || a.name() != backend {
		return ""
	}
	return a.choice.Reason
}

func (a *accelState) current() accelChoice {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.choice
}

// kernelStored decides a provisional choice again: the kernel service calls
// it after each kernel is stored. A final choice is left alone, so this
// probes at most once per daemon start. The request that stored the kernel
// waits for the probe (up to qemu.DefaultProbeTimeout), so it is told what
// it waits for and what was decided.
func (a *accelState) kernelStored(ctx context.Context, progress func(api.ProgressEvent)) {
	a.redo.Lock()
	defer a.redo.Unlock()
	cur := a.current()
	if !cur.Provisional || a.decide == nil {
		return
	}
	progress(api.ProgressEvent{Phase: "accelerator", Detail: fmt.Sprintf("probing kvm with this kernel (at most %s)", qemu.DefaultProbeTimeout)})
	c, err := a.decide(ctx)
	if err != nil {
		a.log.Warn("accelerator not decided again", "err", err)
		progress(api.ProgressEvent{Phase: "accelerator", Detail: "not decided again: " + err.Error()})
		return
	}
	if c.Provisional {
		return
	}
	// The switch and the new reason are one step for ReasonFor.
	a.mu.Lock()
	if c.KVM != cur.KVM {
		if err := a.use(c.KVM); err != nil {
			c = accelChoice{KVM: cur.KVM, Reason: c.Reason + ", but the vmm could not switch to it: " + err.Error()}
		}
	}
	a.choice = c
	a.mu.Unlock()
	backend := ""
	if a.name != nil {
		backend = a.name()
	}
	a.log.Info("vmm backend", "backend", backend, "accel", c.Name(), "why", c.Reason, "decided_again", "a kernel is stored")
	progress(api.ProgressEvent{Phase: "accelerator", Detail: c.Name() + ": " + c.Reason})
}
