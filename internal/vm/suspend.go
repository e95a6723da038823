package vm

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/vmm"
)

// resumeDialTimeout bounds reaching the agent of a resumed guest.
const resumeDialTimeout = 30 * time.Second

// suspender returns the backend's suspend capability, or a clear error.
func (m *Manager) suspender() (vmm.Suspender, error) {
	s, ok := m.backend.(vmm.Suspender)
	if !ok {
		return nil, api.Errorf(api.ErrUnavailable, "the %s backend cannot suspend or snapshot VMs", m.backend.Name())
	}
	return s, nil
}

// Suspend stops a running VM's vCPUs: its memory, processes and network
// identity stay (in the VMM), the host CPU is freed. Guest operations are
// refused until Resume.
func (m *Manager) Suspend(ctx context.Context, ref string) (model.VMRecord, error) {
	s, err := m.suspender()
	if err != nil {
		return model.VMRecord{}, err
	}
	vm, unlock, err := m.lockedVM(ctx, ref)
	if err != nil {
		return vm, err
	}
	defer unlock()
	switch vm.State {
	case model.VMRunning:
	case model.VMSuspended:
		return vm, api.Errorf(api.ErrConflict, "vm %q is already suspended", vm.Name)
	default:
		return vm, api.Errorf(api.ErrConflict, "vm %q is not running (state %s)", vm.Name, vm.State)
	}
	if reason := m.pauseReason(ctx, vm); reason != "" {
		vm.State, vm.PauseReason = model.VMPaused, reason
		return vm, pausedError(vm)
	}
	if err := s.Suspend(ctx, filepath.Join(vm.Dir, paths.VMRunDir)); err != nil {
		return vm, fmt.Errorf("suspend vm %q: %w", vm.Name, err)
	}
	vm.State = model.VMSuspended
	if err := m.store.UpdateVM(context.WithoutCancel(ctx), vm); err != nil {
		return vm, err
	}
	m.log.Info("vm suspended", "vm", vm.Name)
	return vm, nil
}

// Resume continues a suspended VM, then sets its clock from the host's and
// reseeds its RNG with host entropy (the guest slept through the pause).
func (m *Manager) Resume(ctx context.Context, ref string) (model.VMRecord, error) {
	s, err := m.suspender()
	if err != nil {
		return model.VMRecord{}, err
	}
	vm, unlock, err := m.lockedVM(ctx, ref)
	if err != nil {
		return vm, err
	}
	defer unlock()
	if vm.State != model.VMSuspended {
		return vm, api.Errorf(api.ErrConflict, "vm %q is not suspended (state %s)", vm.Name, vm.State)
	}
	if err := s.Resume(ctx, filepath.Join(vm.Dir, paths.VMRunDir)); err != nil {
		return vm, fmt.Errorf("resume vm %q: %w", vm.Name, err)
	}
	vm.State = model.VMRunning
	if err := m.store.UpdateVM(context.WithoutCancel(ctx), vm); err != nil {
		return vm, err
	}
	if err := m.refreshGuest(ctx, vm); err != nil {
		return vm, fmt.Errorf("resume vm %q: the vm runs again but %w", vm.Name, err)
	}
	m.log.Info("vm resumed", "vm", vm.Name)
	return vm, nil
}

// refreshGuest sets the clock of a guest continued from memory and reseeds
// its RNG.
func (m *Manager) refreshGuest(ctx context.Context, vm model.VMRecord) error {
	dctx, cancel := context.WithTimeout(ctx, resumeDialTimeout)
	defer cancel()
	c, err := guest.Dial(dctx, sshAddr(vm), m.signer, vm.SSHHostKey)
	if err != nil {
		return fmt.Errorf("its agent is unreachable: %w", err)
	}
	defer c.Close()
	c.CallTimeout = m.guestTimeout()
	if err := c.SetTime(ctx, time.Now()); err != nil {
		return fmt.Errorf("its clock was not set: %w", err)
	}
	if err := c.Reseed(ctx); err != nil {
		return fmt.Errorf("its rng was not reseeded: %w", err)
	}
	return nil
}

// suspendedError is what guest operations answer for a suspended VM.
func suspendedError(vm model.VMRecord) error {
	return api.Errorf(api.ErrConflict, "vm %q is suspended: resume it with 'banger vm resume %s'", vm.Name, vm.Name)
}
