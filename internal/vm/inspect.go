package vm

import (
	"context"
	"path/filepath"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/vmm/vmmproc"
)

// List returns every VM; one its VMM paused on a host I/O error shows as
// paused, with the reason.
func (m *Manager) List(ctx context.Context) ([]model.VMRecord, error) {
	vms, err := m.store.ListVMs(ctx)
	for i := range vms {
		m.observe(ctx, &vms[i])
	}
	return vms, err
}

// Show returns one VM (paused with the reason, like List).
func (m *Manager) Show(ctx context.Context, ref string) (model.VMRecord, error) {
	vm, err := m.store.GetVM(ctx, ref)
	if err == nil {
		m.observe(ctx, &vm)
	}
	return vm, err
}

// running loads a VM and fails clearly unless it runs.
func (m *Manager) running(ctx context.Context, ref string) (model.VMRecord, error) {
	vm, err := m.store.GetVM(ctx, ref)
	if err != nil {
		return vm, err
	}
	if vm.State == model.VMSuspended {
		return vm, suspendedError(vm)
	}
	if vm.State != model.VMRunning {
		return vm, api.Errorf(api.ErrConflict, "vm %q is %s: start it with 'banger vm start %s'", vm.Name, vm.State, vm.Name)
	}
	if m.observe(ctx, &vm); vm.State == model.VMPaused {
		return vm, pausedError(vm)
	}
	return vm, nil
}

// guestTimeout bounds one guest round trip.
func (m *Manager) guestTimeout() time.Duration {
	if m.cfg.GuestTimeout > 0 {
		return m.cfg.GuestTimeout
	}
	return guest.DefaultCallTimeout
}

// Running resolves a running VM for the guest service (guest.Resolver).
func (m *Manager) Running(ctx context.Context, ref string) (guest.Target, error) {
	vm, err := m.running(ctx, ref)
	t := guest.Target{ID: vm.ID, Name: vm.Name, Addr: sshAddr(vm), HostKey: vm.SSHHostKey,
		GuestIP: vm.GuestIP, DNSName: vm.DNSName, Dir: vm.Dir, Paused: vm.State == model.VMPaused}
	if vm.Network == "user" {
		t.Unreachable = "user-mode networking"
	}
	return t, err
}

// RememberKey records an authorized_keys line for the VM's future boots
// (guest.Resolver).
func (m *Manager) RememberKey(ctx context.Context, id, line string) error {
	unlock := m.lock(id)
	defer unlock()
	cur, err := m.store.GetVM(ctx, id)
	if err != nil {
		return err
	}
	for _, k := range cur.AuthorizedKeys {
		if guest.SameKey(k, line) {
			return nil
		}
	}
	cur.AuthorizedKeys = append(cur.AuthorizedKeys, line)
	return m.store.UpdateVM(ctx, cur)
}

// dialGuest connects to a running VM's agent with the manager's deadline.
func (m *Manager) dialGuest(ctx context.Context, vm model.VMRecord) (*guest.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, guest.DefaultDialTimeout)
	defer cancel()
	c, err := guest.Dial(dctx, sshAddr(vm), m.signer, vm.SSHHostKey)
	if err != nil {
		return nil, err
	}
	c.CallTimeout = m.guestTimeout()
	return c, nil
}

// Stats returns resource use.
func (m *Manager) Stats(ctx context.Context, ref string) (model.VMRecord, model.VMStats, error) {
	vm, err := m.store.GetVM(ctx, ref)
	if err != nil {
		return vm, model.VMStats{}, err
	}
	overlay, work := filepath.Join(vm.Dir, paths.VMOverlay), filepath.Join(vm.Dir, paths.VMWorkDisk)
	m.observe(ctx, &vm)
	st := model.VMStats{State: vm.State, OverlaySizeBytes: fileSize(overlay), WorkDiskSizeBytes: fileSize(work),
		OverlayAllocBytes: allocated(overlay), WorkDiskAllocBytes: allocated(work)}
	if vm.State != model.VMRunning && vm.State != model.VMPaused && vm.State != model.VMSuspended {
		return vm, st, nil
	}
	if vm.StartedAt != nil {
		st.UptimeSeconds = time.Since(*vm.StartedAt).Seconds()
	}
	if vm.PID > 0 {
		st.VMMCPUSeconds, st.VMMRSSBytes, _ = vmmproc.ProcStats(vm.PID)
	}
	if vm.State != model.VMRunning {
		return vm, st, nil
	}
	if c, err := m.dialGuest(ctx, vm); err == nil {
		if du, err := c.DiskUsage(ctx); err == nil {
			st.OverlayUsedBytes, st.WorkDiskUsedBytes = int64(du.Root.UsedBytes), int64(du.Work.UsedBytes)
		}
		c.Close()
	}
	return vm, st, nil
}

// Logs returns the serial console log path.
func (m *Manager) Logs(ctx context.Context, ref string) (string, error) {
	vm, err := m.store.GetVM(ctx, ref)
	if err != nil {
		return "", err
	}
	return filepath.Join(vm.Dir, paths.VMSerialLog), nil
}
