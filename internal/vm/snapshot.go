package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/bootcfg"
	"banger/internal/kernel"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/vmm"
)

// snapshotStore is the part of the store snapshots need (the daemon's
// store has it; the manager type-asserts).
type snapshotStore interface {
	InsertSnapshot(ctx context.Context, sn model.Snapshot) error
	GetSnapshot(ctx context.Context, ref string) (model.Snapshot, error)
	ListSnapshots(ctx context.Context) ([]model.Snapshot, error)
	DeleteSnapshot(ctx context.Context, id string) error
}

// Files of a snapshot folder besides the VMM's (vmm.SnapshotState, vmm.SnapshotRAM).
const (
	snapOverlay    = paths.VMOverlay
	snapWork       = paths.VMWorkDisk
	snapWorkspaces = paths.VMWorkspace
)

func (m *Manager) snapshotsDir() string { return filepath.Join(m.cfg.State.Dir, "snapshots") }

// snapshotter returns the backend's snapshot capability and the store's
// snapshot table, or a clear error.
func (m *Manager) snapshotter() (vmm.Snapshotter, vmm.Suspender, snapshotStore, error) {
	sn, ok := m.backend.(vmm.Snapshotter)
	su, ok2 := m.backend.(vmm.Suspender)
	if !ok || !ok2 {
		return nil, nil, nil, api.Errorf(api.ErrUnavailable, "the %s backend cannot snapshot or fork VMs", m.backend.Name())
	}
	st, ok := m.store.(snapshotStore)
	if !ok {
		return nil, nil, nil, api.Errorf(api.ErrUnavailable, "this daemon's store keeps no snapshots")
	}
	return sn, su, st, nil
}

// specFor is the VMM spec of vm with the given kernel and initrd: what
// stepVMM boots (with the environment's extra kernel arguments) and a
// restore runs.
func specFor(vm model.VMRecord, img model.Image, kernelPath, initrd string) vmm.Spec {
	dir := vm.Dir
	return vmm.Spec{
		RunDir: filepath.Join(dir, paths.VMRunDir),
		Kernel: kernelPath, Initrd: initrd, KernelHZ: kernel.HZ(kernelPath),
		Cmdline: baseCmdline,
		VCPUs:   vm.VCPUCount, MemoryMiB: vm.MemoryMiB,
		SerialLog: filepath.Join(dir, paths.VMSerialLog),
		Disks: []vmm.Disk{
			{Path: img.RootfsPath, Serial: bootcfg.SerialRootfs, ReadOnly: true},
			{Path: filepath.Join(dir, paths.VMOverlay), Serial: bootcfg.SerialOverlay},
			{Path: filepath.Join(dir, paths.VMWorkDisk), Serial: bootcfg.SerialWork},
			{Path: filepath.Join(dir, paths.VMConfig), Serial: bootcfg.SerialConfig, ReadOnly: true},
		},
		Net: &vmm.Net{Tap: vm.TapDevice, MAC: vm.MAC, SSHHostPort: vm.SSHPort,
			Isolated: vm.EffectiveEgress().Mode == model.EgressNone},
	}
}

// vmSpec resolves vm's image, kernel and initrd into its VMM spec.
func (m *Manager) vmSpec(ctx context.Context, vm model.VMRecord) (vmm.Spec, model.Image, error) {
	img, err := m.store.GetImage(ctx, vm.ImageID)
	if err != nil {
		return vmm.Spec{}, img, err
	}
	kernel, modules, err := m.kernels.BootFiles(ctx, vm.KernelName)
	if err != nil {
		return vmm.Spec{}, img, err
	}
	initrd, err := m.composeInitrd(modules)
	if err != nil {
		return vmm.Spec{}, img, err
	}
	return specFor(vm, img, kernel, initrd), img, nil
}

// Snapshot saves a running (or suspended) VM: memory, device state, disks
// and workspace baselines, into a folder of the state directory (0700,
// files 0600). The VM is paused while its files are copied; it then runs
// on with KeepRunning, else it is left suspended.
func (m *Manager) Snapshot(ctx context.Context, p api.VMSnapshotParams) (model.Snapshot, error) {
	snapper, susp, st, err := m.snapshotter()
	if err != nil {
		return model.Snapshot{}, err
	}
	vm, err := m.store.GetVM(ctx, p.IDOrName)
	if err != nil {
		return model.Snapshot{}, err
	}
	defer m.lock(vm.ID)()
	if vm, err = m.store.GetVM(ctx, vm.ID); err != nil {
		return model.Snapshot{}, err
	}
	return m.snapshotLocked(ctx, snapper, susp, st, vm, p.Name, p.KeepRunning)
}

func (m *Manager) snapshotLocked(ctx context.Context, snapper vmm.Snapshotter, susp vmm.Suspender, st snapshotStore,
	vm model.VMRecord, name string, keepRunning bool) (model.Snapshot, error) {
	if vm.State != model.VMRunning && vm.State != model.VMSuspended {
		return model.Snapshot{}, api.Errorf(api.ErrConflict, "vm %q is not running (state %s): only a running vm can be snapshotted", vm.Name, vm.State)
	}
	if vm.Network != "bridge" {
		return model.Snapshot{}, api.Errorf(api.ErrUnavailable, "vm %q uses user-mode networking: its clones could not be given addresses of their own, so it cannot be snapshotted", vm.Name)
	}
	if reason := m.pauseReason(ctx, vm); reason != "" {
		vm.State, vm.PauseReason = model.VMPaused, reason
		return model.Snapshot{}, pausedError(vm)
	}
	if name == "" {
		name = vm.Name + "-" + time.Now().UTC().Format("20060102-150405")
	}
	if err := checkName(name); err != nil {
		return model.Snapshot{}, api.Errorf(api.ErrInvalid, "snapshot name %q is not valid (a-z, 0-9 and '-', 1 to 63 characters)", name)
	}
	if _, err := st.GetSnapshot(ctx, name); err == nil {
		return model.Snapshot{}, api.Errorf(api.ErrExists, "snapshot %q already exists", name)
	}
	spec, img, err := m.vmSpec(ctx, vm)
	if err != nil {
		return model.Snapshot{}, fmt.Errorf("snapshot vm %q: %w", vm.Name, err)
	}
	fp, err := snapper.Fingerprint(spec)
	if err != nil {
		return model.Snapshot{}, fmt.Errorf("snapshot vm %q: %w", vm.Name, err)
	}
	sn := model.Snapshot{ID: newID(), Name: name, VMID: vm.ID, VMName: vm.Name, OwnerUID: vm.OwnerUID, OwnerGID: vm.OwnerGID,
		ImageID: vm.ImageID, ImageName: img.Name, KernelName: vm.KernelName, Backend: vm.Backend,
		VCPUCount: vm.VCPUCount, MemoryMiB: vm.MemoryMiB, SystemOverlayBytes: vm.SystemOverlayBytes,
		WorkDiskBytes: vm.WorkDiskBytes, NATEnabled: vm.NATEnabled, AuthorizedKeys: vm.AuthorizedKeys,
		Egress: vm.Egress, Secrets: vm.Secrets, Fingerprint: fp, CreatedAt: time.Now().UTC()}
	sn.Dir = filepath.Join(m.snapshotsDir(), sn.ID)
	if err := os.MkdirAll(m.snapshotsDir(), 0o700); err != nil {
		return sn, fmt.Errorf("snapshot vm %q: %w", vm.Name, err)
	}
	if err := os.Mkdir(sn.Dir, 0o700); err != nil {
		return sn, fmt.Errorf("snapshot vm %q: %w", vm.Name, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(sn.Dir)
		}
	}()
	runDir := filepath.Join(vm.Dir, paths.VMRunDir)
	wasRunning := vm.State == model.VMRunning
	err = snapper.Snapshot(ctx, runDir, sn.Dir)
	if err == nil {
		err = copySnapshotDisks(vm.Dir, sn.Dir)
	}
	if err == nil {
		// Its clones keep the CA the snapshot's memory trusts.
		err = copyCA(vm.Dir, sn.Dir)
	}
	// The guest is stopped from here: it runs again unless it is to stay suspended.
	if wasRunning && (keepRunning || err != nil) {
		if rerr := susp.Resume(context.WithoutCancel(ctx), runDir); rerr != nil {
			m.log.Warn("resume vm after snapshot", "vm", vm.Name, "err", rerr)
		}
	} else if wasRunning {
		vm.State = model.VMSuspended
		if uerr := m.store.UpdateVM(context.WithoutCancel(ctx), vm); uerr != nil {
			m.log.Warn("record suspended vm", "vm", vm.Name, "err", uerr)
		}
	}
	if err != nil {
		return sn, fmt.Errorf("snapshot vm %q: %w", vm.Name, err)
	}
	sn.SizeBytes = allocatedTree(sn.Dir)
	if err := st.InsertSnapshot(context.WithoutCancel(ctx), sn); err != nil {
		return sn, err
	}
	ok = true
	m.log.Info("vm snapshotted", "vm", vm.Name, "snapshot", sn.Name, "bytes", sn.SizeBytes)
	return sn, nil
}

// copySnapshotDisks copies the VM's writable disks and workspace baselines
// (the guest is stopped, its disks quiesced by the VMM).
func copySnapshotDisks(vmDir, snapDir string) error {
	for _, f := range []string{snapOverlay, snapWork} {
		if err := copyFile(filepath.Join(vmDir, f), filepath.Join(snapDir, f)); err != nil {
			return fmt.Errorf("copy %s: %w", f, err)
		}
	}
	if err := copyTree(filepath.Join(vmDir, paths.VMWorkspace), filepath.Join(snapDir, snapWorkspaces)); err != nil {
		return fmt.Errorf("copy workspaces: %w", err)
	}
	return nil
}

// ListSnapshots returns every snapshot (the server filters by owner).
func (m *Manager) ListSnapshots(ctx context.Context) ([]model.Snapshot, error) {
	_, _, st, err := m.snapshotter()
	if err != nil {
		return nil, err
	}
	return st.ListSnapshots(ctx)
}

// ShowSnapshot returns one snapshot.
func (m *Manager) ShowSnapshot(ctx context.Context, ref string) (model.Snapshot, error) {
	_, _, st, err := m.snapshotter()
	if err != nil {
		return model.Snapshot{}, err
	}
	return st.GetSnapshot(ctx, ref)
}

// DeleteSnapshot removes a snapshot and its files. It is refused while a
// clone's VMM maps its memory (a running or suspended clone).
func (m *Manager) DeleteSnapshot(ctx context.Context, ref string) error {
	_, _, st, err := m.snapshotter()
	if err != nil {
		return err
	}
	sn, err := st.GetSnapshot(ctx, ref)
	if err != nil {
		return err
	}
	m.snapMu.Lock()
	defer m.snapMu.Unlock()
	vms, err := m.store.ListVMs(ctx)
	if err != nil {
		return err
	}
	var users []string
	for _, v := range vms {
		if v.ForkedFrom == sn.ID && v.State != model.VMStopped && v.State != model.VMError {
			users = append(users, v.Name)
		}
	}
	if len(users) > 0 {
		sort.Strings(users)
		return api.Errorf(api.ErrConflict, "snapshot %q is still mapped by running clones (%s): stop or delete them first", sn.Name, strings.Join(users, ", "))
	}
	if err := st.DeleteSnapshot(ctx, sn.ID); err != nil {
		return err
	}
	if sn.Dir != "" && filepath.Dir(sn.Dir) == m.snapshotsDir() {
		if err := os.RemoveAll(sn.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete snapshot %q: %w", sn.Name, err)
		}
	}
	m.log.Info("snapshot deleted", "snapshot", sn.Name)
	return nil
}

// reconcileSnapshots (daemon start) removes snapshot folders no record
// names: a snapshot or delete cut short by a crash.
func (m *Manager) reconcileSnapshots(ctx context.Context) {
	_, _, st, err := m.snapshotter()
	if err != nil {
		return
	}
	sns, err := st.ListSnapshots(ctx)
	if err != nil {
		return
	}
	known := map[string]bool{}
	for _, sn := range sns {
		known[sn.ID] = true
	}
	entries, _ := os.ReadDir(m.snapshotsDir())
	for _, e := range entries {
		if !known[e.Name()] {
			dir := filepath.Join(m.snapshotsDir(), e.Name())
			m.log.Warn("removing orphan snapshot folder", "dir", dir)
			os.RemoveAll(dir)
		}
	}
}
