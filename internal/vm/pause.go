package vm

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"banger/internal/api"
	"banger/internal/model"
	"banger/internal/paths"
)

// ioPauser is a backend whose VMM stops a guest on a host I/O error (QEMU,
// when a disk write fails because the host filesystem is full) and can
// resume it.
type ioPauser interface {
	// IOPaused returns why the VMM stopped the guest, "" when it did not.
	IOPaused(ctx context.Context, runDir string) (string, error)
	Resume(ctx context.Context, runDir string) error
}

// resumeMinFree is the free space vm start wants on the VM's filesystem
// before it resumes a VM paused on a full disk.
const resumeMinFree = 64 << 20

// pauseQueryTimeout bounds the VMM status query made by a read.
const pauseQueryTimeout = 3 * time.Second

// observe reports a running VM that its VMM paused on a host I/O error as
// State "paused" with the reason. Only the returned view changes: the record
// stays running (the VMM still runs; vm start resumes it).
func (m *Manager) observe(ctx context.Context, vm *model.VMRecord) {
	if reason := m.pauseReason(ctx, *vm); reason != "" {
		vm.State, vm.PauseReason = model.VMPaused, reason
	}
}

func (m *Manager) pauseReason(ctx context.Context, vm model.VMRecord) string {
	p, ok := m.backend.(ioPauser)
	if !ok || vm.State != model.VMRunning {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, pauseQueryTimeout)
	defer cancel()
	reason, err := p.IOPaused(ctx, filepath.Join(vm.Dir, paths.VMRunDir))
	if err != nil {
		m.log.Debug("vmm status", "vm", vm.Name, "err", err)
		return ""
	}
	return reason
}

// pausedError is what guest operations answer for a paused VM.
func pausedError(vm model.VMRecord) error {
	return api.Errorf(api.ErrConflict, "vm %q is paused: %s; free space on the host, then 'banger vm start %s' resumes it", vm.Name, vm.PauseReason, vm.Name)
}

// resume continues a VM paused on a host I/O error, once its filesystem has
// room again. The caller holds the VM's lock.
func (m *Manager) resume(ctx context.Context, vm model.VMRecord, reason string) (model.VMRecord, error) {
	dir := m.cfg.State.VMs()
	free, err := m.freeSpace(dir)
	if err != nil {
		return vm, fmt.Errorf("resume vm %q: %w", vm.Name, err)
	}
	if free < resumeMinFree {
		vm.State, vm.PauseReason = model.VMPaused, reason
		return vm, api.Errorf(api.ErrConflict, "vm %q stays paused (%s): only %s free on %s, it needs at least %s; free space, then run 'banger vm start %s' again",
			vm.Name, reason, humanBytes(free), dir, humanBytes(resumeMinFree), vm.Name)
	}
	if err := m.backend.(ioPauser).Resume(ctx, filepath.Join(vm.Dir, paths.VMRunDir)); err != nil {
		return vm, fmt.Errorf("resume vm %q: %w", vm.Name, err)
	}
	m.log.Info("vm resumed after a host I/O error", "vm", vm.Name, "reason", reason, "free_bytes", free)
	return vm, nil
}
