package vm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"banger/internal/model"
	"banger/internal/paths"
)

// Reconcile runs at daemon start. Running VMs whose VMM still answers are
// re-adopted; dead ones are marked stopped with the reason. VMs caught mid-
// create by a daemon crash are removed entirely (VMM, network, disks, row)
// and their operation marked failed. VM folders no row knows are removed.
// It returns the live VMs (id -> NAT) for network reconciliation.
func (m *Manager) Reconcile(ctx context.Context) (map[string]bool, error) {
	vms, err := m.store.ListVMs(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	live := map[string]bool{}
	known := map[string]bool{}
	for _, vm := range vms {
		known[vm.ID] = true
		switch vm.State {
		case model.VMCreating:
			m.log.Warn("removing vm left half-created by a previous daemon", "vm", vm.Name)
			m.destroy(vm)
			delete(known, vm.ID)
		case model.VMRunning, model.VMSuspended:
			proc, err := m.backend.Adopt(ctx, filepath.Join(vm.Dir, paths.VMRunDir))
			if err != nil {
				m.log.Warn("vm stopped while the daemon was down", "vm", vm.Name, "err", err)
				if err := m.markStopped(ctx, &vm, "VMM exited while the daemon was down"); err != nil {
					m.log.Error("record vm stopped", "vm", vm.Name, "err", err)
				}
				continue
			}
			vm.PID = proc.PID
			if err := m.store.UpdateVM(ctx, vm); err != nil {
				m.log.Error("record re-adopted vm", "vm", vm.Name, "pid", proc.PID, "err", err)
			}
			live[vm.ID] = vm.NATEnabled
			m.log.Info("re-adopted running vm", "vm", vm.Name, "pid", proc.PID)
		}
	}
	ops, err := m.store.UnfinishedOperations(ctx)
	if err != nil {
		m.log.Error("list unfinished create operations", "err", err)
	}
	for _, op := range ops {
		op.Done, op.Success, op.UpdatedAt = true, false, time.Now().UTC()
		op.Error = fmt.Sprintf("the daemon stopped during stage %q; the half-made vm was removed", op.Stage)
		if err := m.store.PutOperation(ctx, op); err != nil {
			m.log.Error("record create operation failed", "op", op.ID, "err", err)
		}
	}
	m.reconcileSnapshots(ctx)
	entries, err := os.ReadDir(m.cfg.State.VMs())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Error("list vm folders", "err", err)
	}
	for _, e := range entries {
		if e.IsDir() && !known[e.Name()] && !strings.HasPrefix(e.Name(), ".") {
			dir := m.cfg.State.VM(e.Name())
			m.log.Warn("removing orphan vm folder", "dir", dir)
			if err := m.backend.Quit(ctx, filepath.Join(dir, paths.VMRunDir)); err != nil {
				m.log.Warn("stop the vmm of an orphan vm folder", "dir", dir, "err", err)
			}
			if err := os.RemoveAll(dir); err != nil {
				m.log.Error("remove orphan vm folder", "dir", dir, "err", err)
			}
		}
	}
	return live, nil
}
