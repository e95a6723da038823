package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/vmm"
)

// MaxForkCount bounds the clones of one fork request.
const MaxForkCount = 16

// reidentifyTimeout bounds giving a restored clone its identity over its
// control port.
const reidentifyTimeout = 60 * time.Second

// Fork makes Count clones of a running VM (snapshotted first, the snapshot
// is kept: its clones map its memory) or of a snapshot. Each clone resumes
// where the VM was, with its own name, ID, MAC, address, DNS name, SSH host
// key, hostname, clock and reseeded RNG, and its own copy-on-write disks
// and workspace baselines from the snapshot. All clones or none: on any
// failure the clones made are removed.
func (m *Manager) Fork(ctx context.Context, p api.VMForkParams) (api.VMForkResult, error) {
	snapper, susp, st, err := m.snapshotter()
	if err != nil {
		return api.VMForkResult{}, err
	}
	if (p.IDOrName == "") == (p.FromSnapshot == "") {
		return api.VMForkResult{}, api.Errorf(api.ErrInvalid, "fork needs a running vm or --from-snapshot, not both")
	}
	if p.Count == 0 {
		p.Count = 1
	}
	if p.Count < 1 || p.Count > MaxForkCount {
		return api.VMForkResult{}, api.Errorf(api.ErrInvalid, "count must be 1 to %d, got %d", MaxForkCount, p.Count)
	}
	var sn model.Snapshot
	if p.IDOrName != "" {
		vm, err := m.store.GetVM(ctx, p.IDOrName)
		if err != nil {
			return api.VMForkResult{}, err
		}
		unlock := m.lock(vm.ID)
		if vm, err = m.store.GetVM(ctx, vm.ID); err == nil {
			sn, err = m.snapshotLocked(ctx, snapper, susp, st, vm, vm.Name+"-fork-"+time.Now().UTC().Format("150405")+"-"+newID()[:4], true)
		}
		unlock()
		if err != nil {
			return api.VMForkResult{}, err
		}
	} else if sn, err = st.GetSnapshot(ctx, p.FromSnapshot); err != nil {
		return api.VMForkResult{}, err
	}
	if err := m.checkRestorable(ctx, snapper, sn); err != nil {
		return api.VMForkResult{Snapshot: sn}, err
	}
	if err := m.checkSecretsExist(ctx, sn.Secrets); err != nil {
		return api.VMForkResult{Snapshot: sn}, err
	}
	prefix := p.NamePrefix
	if prefix == "" {
		prefix = sn.VMName
	}
	names := make([]string, p.Count)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", prefix, i+1)
		if err := checkName(names[i]); err != nil {
			return api.VMForkResult{Snapshot: sn}, err
		}
		if _, err := m.store.GetVM(ctx, names[i]); err == nil {
			return api.VMForkResult{Snapshot: sn}, api.Errorf(api.ErrExists, "vm %q already exists: choose another --name prefix", names[i])
		}
	}
	// A snapshot delete waits until the clones are recorded as its users.
	m.snapMu.RLock()
	defer m.snapMu.RUnlock()
	if _, err := st.GetSnapshot(ctx, sn.ID); err != nil {
		return api.VMForkResult{Snapshot: sn}, err
	}
	clones := make([]model.VMRecord, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clones[i], errs[i] = m.forkOne(ctx, snapper, susp, sn, name)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for i, c := range clones {
			if errs[i] == nil {
				m.destroy(c)
			}
		}
		return api.VMForkResult{Snapshot: sn}, fmt.Errorf("fork %s: %w", sn.Name, err)
	}
	return api.VMForkResult{Snapshot: sn, VMs: clones}, nil
}

// forkOne restores one clone of sn named name and re-identifies it before
// it is reachable. On failure nothing of it is left.
func (m *Manager) forkOne(ctx context.Context, snapper vmm.Snapshotter, susp vmm.Suspender, sn model.Snapshot, name string) (model.VMRecord, error) {
	img, err := m.store.GetImage(ctx, sn.ImageID)
	if err != nil {
		return model.VMRecord{}, fmt.Errorf("clone %s: image of the snapshot: %w", name, err)
	}
	vm, err := m.cloneRecord(sn, img, name)
	if err != nil {
		return vm, fmt.Errorf("clone %s: %w", name, err)
	}
	if err := m.insertClone(ctx, vm); err != nil {
		return vm, err
	}
	ok := false
	defer func() {
		if !ok {
			m.destroy(vm)
		}
	}()
	if err := m.forkSteps(ctx, snapper, susp, sn, img, &vm); err != nil {
		if t := tail(filepath.Join(vm.Dir, paths.VMSerialLog), 10); t != "" {
			err = fmt.Errorf("%w\nserial console of %s, last lines:\n%s", err, name, t)
		}
		if t := tail(filepath.Join(vm.Dir, paths.VMRunDir, "vmm.log"), 10); t != "" {
			err = fmt.Errorf("%w\nvmm log of %s:\n%s", err, name, t)
		}
		if s, ok := m.backend.(vmm.Suspender); ok {
			stopped, serr := s.Suspended(context.WithoutCancel(ctx), filepath.Join(vm.Dir, paths.VMRunDir))
			err = fmt.Errorf("%w\nvmm of %s: guest stopped=%t (%v)", err, name, stopped, serr)
		}
		m.log.Warn("fork failed", "vm", name, "err", err)
		return vm, fmt.Errorf("clone %s: %w", name, err)
	}
	vm.State, vm.LastError = model.VMRunning, ""
	if err := m.store.UpdateVM(context.WithoutCancel(ctx), vm); err != nil {
		return vm, err
	}
	ok = true
	m.log.Info("vm forked", "vm", vm.Name, "snapshot", sn.Name, "ip", vm.GuestIP)
	return vm, nil
}

// cloneRecord is the record of a new clone of sn named name: the
// snapshot's settings and egress policy, its secrets with new
// placeholders (the guest is told them when re-identified).
func (m *Manager) cloneRecord(sn model.Snapshot, img model.Image, name string) (model.VMRecord, error) {
	vm := model.VMRecord{ID: newID(), Name: name, State: model.VMCreating, ImageID: sn.ImageID, ImageName: img.Name,
		KernelName: sn.KernelName, VCPUCount: sn.VCPUCount, MemoryMiB: sn.MemoryMiB,
		SystemOverlayBytes: sn.SystemOverlayBytes, WorkDiskBytes: sn.WorkDiskBytes, NATEnabled: sn.NATEnabled,
		OwnerUID: sn.OwnerUID, OwnerGID: sn.OwnerGID, CreatedAt: time.Now().UTC(),
		AuthorizedKeys: sn.AuthorizedKeys, ForkedFrom: sn.ID, Egress: sn.Egress}
	vm.Dir = m.cfg.State.VM(vm.ID)
	var err error
	if vm.Secrets, err = newPlaceholders(sn.Secrets); err != nil {
		return vm, err
	}
	withSecretEgress(&vm)
	return vm, nil
}

// insertClone records a clone; its secrets are checked again, and held
// from removal, up to the insert (a secret removed since the fork began
// is not bound to a new VM).
func (m *Manager) insertClone(ctx context.Context, vm model.VMRecord) error {
	if len(vm.Secrets) > 0 && m.secrets != nil {
		release := m.secrets.Hold()
		defer release()
	}
	if err := m.checkSecretsExist(ctx, vm.Secrets); err != nil {
		return err
	}
	return m.store.InsertVM(ctx, vm)
}

func (m *Manager) forkSteps(ctx context.Context, snapper vmm.Snapshotter, susp vmm.Suspender, sn model.Snapshot, img model.Image, vm *model.VMRecord) error {
	if err := os.MkdirAll(filepath.Join(vm.Dir, paths.VMRunDir), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(vm.Dir, 0o700); err != nil {
		return err
	}
	if err := copySnapshotDisks(sn.Dir, vm.Dir); err != nil {
		return fmt.Errorf("disks: %w", err)
	}
	// The clone's memory trusts the snapshot's CA: it keeps it.
	if err := copyCA(sn.Dir, vm.Dir); err != nil {
		return err
	}
	priv, pub, err := guest.GenerateHostKey()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(vm.Dir, paths.VMHostKey), priv, 0o600); err != nil {
		return err
	}
	vm.SSHHostKey = pub
	b := &bootRun{vm: vm, img: img, report: func(string, string) {}}
	if err := m.stepNetwork(ctx, b); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if b.netcfg == nil {
		return errors.New("network: a clone needs bridge networking")
	}
	// The boot configuration is the clone's own, for its next cold boot.
	if err := m.stepConfig(ctx, b); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := m.stepInitrd(ctx, b); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	spec := specFor(*vm, img, b.kernel, b.initrd)
	fp, err := snapper.Fingerprint(spec)
	if err != nil {
		return err
	}
	if err := sameFingerprint(sn, fp); err != nil {
		return err
	}
	proc, err := snapper.Restore(ctx, spec, sn.Dir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	now := time.Now().UTC()
	vm.PID, vm.Backend, vm.StartedAt = proc.PID, proc.Backend, &now
	vm.AccelReason = m.accelReason(proc.Backend)
	runDir := filepath.Join(vm.Dir, paths.VMRunDir)
	if err := susp.Resume(ctx, runDir); err != nil {
		return err
	}
	// The guest still believes it is the snapshotted VM: its tap's guard
	// lets no frame of that identity out. It changes identity over the
	// control port, which needs no network.
	rctx, cancel := context.WithTimeout(ctx, reidentifyTimeout)
	err = guest.Reidentify(rctx, filepath.Join(runDir, vmm.ControlSocket), proto.Identity{
		Hostname: vm.Name, MAC: b.netcfg.MAC, Address: b.netcfg.Address, Gateway: b.netcfg.Gateway,
		DNS: b.netcfg.DNS, Search: b.netcfg.DNSSearch, HostKey: string(priv), Secrets: guestSecrets(vm.Secrets)})
	cancel()
	if err != nil {
		return fmt.Errorf("reidentify: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, m.cfg.ReadyTimeout)
	defer cancel()
	c, err := guest.WaitReady(wctx, sshAddr(*vm), m.signer, vm.SSHHostKey)
	if err != nil {
		return fmt.Errorf("guest agent: %w", err)
	}
	c.Close()
	return nil
}

// checkRestorable compares sn's fingerprint with what a clone of it would
// run with here, before anything is made.
func (m *Manager) checkRestorable(ctx context.Context, snapper vmm.Snapshotter, sn model.Snapshot) error {
	probe := model.VMRecord{ID: "probe", Name: "probe", ImageID: sn.ImageID, KernelName: sn.KernelName,
		VCPUCount: sn.VCPUCount, MemoryMiB: sn.MemoryMiB, Dir: m.cfg.State.VM("probe"), TapDevice: "probe", Network: "bridge"}
	spec, _, err := m.vmSpec(ctx, probe)
	if err != nil {
		return fmt.Errorf("snapshot %q: %w", sn.Name, err)
	}
	fp, err := snapper.Fingerprint(spec)
	if err != nil {
		return err
	}
	return sameFingerprint(sn, fp)
}

// sameFingerprint refuses to restore sn where anything it recorded differs.
func sameFingerprint(sn model.Snapshot, now map[string]string) error {
	var diffs []string
	for k, want := range sn.Fingerprint {
		if got := now[k]; got != want {
			diffs = append(diffs, fmt.Sprintf("%s (snapshot: %s, now: %s)", k, short(want), short(got)))
		}
	}
	for k, got := range now {
		if _, ok := sn.Fingerprint[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s (snapshot: none, now: %s)", k, short(got)))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return api.Errorf(api.ErrConflict, "snapshot %q cannot be restored here: %s differ", sn.Name, strings.Join(diffs, "; "))
}

func short(s string) string {
	if len(s) == 64 && !strings.ContainsAny(s, " ,:") {
		return s[:12] + "…"
	}
	if s == "" {
		return "none"
	}
	return s
}
