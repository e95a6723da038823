package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/units"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Defaults for vm create.
const (
	DefaultVCPUs       = 2
	DefaultMemoryMiB   = 1024
	DefaultOverlaySize = 8 << 30
	DefaultWorkSize    = 8 << 30
)

// Create validates the request, records the VM and its operation, and boots
// it in the background. The returned operation moves through the stages
// validate, disks, network, boot, agent, ready.
func (m *Manager) Create(ctx context.Context, p api.VMCreateParams) (api.VMCreateOperation, error) {
	release := m.holdSecrets(p.Secrets)
	defer release()
	vm, img, err := m.validateCreate(ctx, p)
	if err != nil {
		return api.VMCreateOperation{}, err
	}
	now := time.Now().UTC()
	op := api.VMCreateOperation{ID: "op-" + newID(), VMID: vm.ID, VMName: vm.Name, Stage: "validate",
		Detail: "request accepted", StartedAt: now, UpdatedAt: now, OwnerUID: vm.OwnerUID}
	// The operation is recorded before the VM, so a crash in between leaves
	// something reconcile can find.
	if err := m.store.PutOperation(ctx, op); err != nil {
		return op, err
	}
	if err := m.store.InsertVM(ctx, vm); err != nil {
		op.Done, op.Error = true, err.Error()
		if perr := m.store.PutOperation(context.Background(), op); perr != nil {
			m.log.Error("record create operation failed", "op", op.ID, "err", perr)
		}
		return op, err
	}
	m.creating.Add(1)
	tracker := &opTracker{m: m, op: op}
	go func() {
		defer m.creating.Done()
		m.runCreate(vm, img, p.NoStart, tracker)
	}()
	return op, nil
}

func (m *Manager) validateCreate(ctx context.Context, p api.VMCreateParams) (model.VMRecord, model.Image, error) {
	caller := authz.CallerFrom(ctx)
	vm := model.VMRecord{ID: newID(), Name: p.Name, State: model.VMCreating, VCPUCount: DefaultVCPUs,
		MemoryMiB: DefaultMemoryMiB, SystemOverlayBytes: DefaultOverlaySize, WorkDiskBytes: DefaultWorkSize,
		NATEnabled: p.NATEnabled, OwnerUID: caller.UID, OwnerGID: caller.GID, CreatedAt: time.Now().UTC()}
	if err := m.egressForCreate(p, &vm); err != nil {
		return vm, model.Image{}, err
	}
	secs, err := m.bindSecrets(ctx, nil, p.Secrets, nil)
	if err != nil {
		return vm, model.Image{}, err
	}
	vm.Secrets = secs
	withSecretEgress(&vm)
	if err := m.checkSecretPolicy(vm); err != nil {
		return vm, model.Image{}, err
	}
	if vm.Name == "" {
		for i := 0; i < 20; i++ {
			vm.Name = generateName()
			if _, err := m.store.GetVM(ctx, vm.Name); errors.Is(err, api.ErrNotFound) {
				break
			}
		}
	}
	if err := checkName(vm.Name); err != nil {
		return vm, model.Image{}, err
	}
	if _, err := m.store.GetVM(ctx, vm.Name); err == nil {
		return vm, model.Image{}, api.Errorf(api.ErrExists, "vm %q already exists", vm.Name)
	}
	if p.VCPUCount != nil {
		vm.VCPUCount = *p.VCPUCount
	}
	if p.MemoryMiB != nil {
		vm.MemoryMiB = *p.MemoryMiB
	}
	if err := checkResources(vm.VCPUCount, vm.MemoryMiB); err != nil {
		return vm, model.Image{}, err
	}
	if p.SystemOverlaySize != "" {
		if vm.SystemOverlayBytes, err = diskSize("system overlay size", p.SystemOverlaySize); err != nil {
			return vm, model.Image{}, err
		}
	}
	if p.WorkDiskSize != "" {
		if vm.WorkDiskBytes, err = diskSize("work disk size", p.WorkDiskSize); err != nil {
			return vm, model.Image{}, err
		}
	}
	if err := m.checkDiskSpace(
		diskRequest{what: "system overlay size", text: sizeText(p.SystemOverlaySize, vm.SystemOverlayBytes), size: vm.SystemOverlayBytes},
		diskRequest{what: "work disk size", text: sizeText(p.WorkDiskSize, vm.WorkDiskBytes), size: vm.WorkDiskBytes},
	); err != nil {
		return vm, model.Image{}, err
	}
	for _, k := range p.AuthorizedKeys {
		line, err := guest.AuthorizedKeyLine(k)
		if err != nil {
			return vm, model.Image{}, err
		}
		vm.AuthorizedKeys = append(vm.AuthorizedKeys, line)
	}
	if p.ImageName == "" {
		return vm, model.Image{}, api.Errorf(api.ErrInvalid, "an image is required (see 'banger image list')")
	}
	img, err := m.store.GetImage(ctx, p.ImageName)
	if err != nil {
		return vm, img, err
	}
	if err := bootable(img); err != nil {
		return vm, img, err
	}
	vm.ImageID, vm.ImageName = img.ID, img.Name
	if vm.KernelName, err = m.kernelFor(ctx, img); err != nil {
		return vm, img, err
	}
	if _, _, err := m.kernels.BootFiles(ctx, vm.KernelName); err != nil {
		return vm, img, err
	}
	vm.Dir = m.cfg.State.VM(vm.ID)
	return vm, img, nil
}

// kernelFor picks the image's preferred kernel, else the only stored one,
// else debian-12-cloud when stored. Only kernels the caller may use are
// candidates (the server's door has checked the image's preferred one).
func (m *Manager) kernelFor(ctx context.Context, img model.Image) (string, error) {
	if img.KernelRef != "" {
		return img.KernelRef, nil
	}
	all, err := m.store.ListKernels(ctx)
	if err != nil {
		return "", err
	}
	caller := authz.CallerFrom(ctx)
	var ks []api.KernelEntry
	for _, k := range all {
		if authz.Decide(caller, authz.Use, authz.Object{Kind: authz.Kernel, Name: k.Name, Owner: k.OwnerUID}) == nil {
			ks = append(ks, k)
		}
	}
	for _, k := range ks {
		if k.Name == "debian-12-cloud" {
			return k.Name, nil
		}
	}
	if len(ks) == 1 {
		return ks[0].Name, nil
	}
	if len(ks) == 0 {
		return "", api.Errorf(api.ErrInvalid, "no kernel to boot image %q: pull one with 'banger kernel pull debian-12-cloud'", img.Name)
	}
	return "", api.Errorf(api.ErrInvalid, "image %q names no kernel and %d are stored: pull it again with --kernel-ref", img.Name, len(ks))
}

func checkResources(vcpus, memMiB int) error {
	if vcpus < 1 || vcpus > runtime.NumCPU() {
		return api.Errorf(api.ErrInvalid, "vcpus must be between 1 and %d (this host's CPUs), got %d", runtime.NumCPU(), vcpus)
	}
	var si unix.Sysinfo_t
	total := int64(0)
	if unix.Sysinfo(&si) == nil {
		total = int64(si.Totalram) * int64(si.Unit) >> 20
	}
	if memMiB < 128 || (total > 0 && int64(memMiB) > total) {
		return api.Errorf(api.ErrInvalid, "memory must be between 128 MiB and %d MiB (this host's memory), got %d", total, memMiB)
	}
	return nil
}

func diskSize(what, s string) (int64, error) {
	n, err := units.ParseSize(s)
	if err != nil {
		return 0, api.Errorf(api.ErrInvalid, "%s: %v", what, err)
	}
	if n < 64<<20 {
		return 0, api.Errorf(api.ErrInvalid, "%s %s is below the 64M minimum", what, s)
	}
	return n, nil
}

// sizeText is a size as the caller wrote it, or the default's.
func sizeText(given string, n int64) string {
	if given != "" {
		return given
	}
	return humanBytes(n) + " (default)"
}

// opTracker records a create operation's progress.
type opTracker struct {
	m  *Manager
	mu sync.Mutex
	op api.VMCreateOperation
}

func (t *opTracker) stage(stage, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.op.Stage, t.op.Detail, t.op.UpdatedAt = stage, detail, time.Now().UTC()
	if err := t.m.store.PutOperation(context.Background(), t.op); err != nil {
		t.m.log.Warn("record operation", "op", t.op.ID, "err", err)
	}
	t.m.ops.notify()
}

func (t *opTracker) finish(vm *model.VMRecord, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.op.Done, t.op.UpdatedAt = true, time.Now().UTC()
	if err != nil {
		t.op.Error = err.Error()
	} else {
		t.op.Success, t.op.Stage, t.op.Detail, t.op.VM = true, "ready", "guest agent answered", vm
	}
	if err := t.m.store.PutOperation(context.Background(), t.op); err != nil {
		t.m.log.Warn("record operation", "op", t.op.ID, "err", err)
	}
	t.m.ops.notify()
}

// runCreate makes the disks and boots; on any failure it removes everything.
func (m *Manager) runCreate(vm model.VMRecord, img model.Image, noStart bool, t *opTracker) {
	unlock := m.lock(vm.ID)
	defer unlock()
	ctx := m.base
	err := m.createDisks(ctx, &vm, img, t)
	if err == nil && !noStart {
		err = m.boot(ctx, &bootRun{vm: &vm, img: img, report: t.stage})
		if err == nil {
			vm.State = model.VMRunning
		}
	} else if err == nil {
		vm.State = model.VMStopped
	}
	if err == nil {
		err = m.store.UpdateVM(context.Background(), vm)
	}
	if err != nil {
		m.log.Warn("create failed", "vm", vm.Name, "err", err)
		m.destroy(vm)
		t.finish(nil, err)
		return
	}
	m.log.Info("vm ready", "vm", vm.Name, "ip", vm.GuestIP, "backend", vm.Backend)
	t.finish(&vm, nil)
}

// createDisks makes the VM folder, its host key and its disks. The image is
// never copied: it is attached read-only under a per-VM overlay.
func (m *Manager) createDisks(ctx context.Context, vm *model.VMRecord, img model.Image, t *opTracker) error {
	t.stage("disks", "creating system overlay and work disk")
	if err := os.MkdirAll(filepath.Join(vm.Dir, paths.VMRunDir), 0o700); err != nil {
		return fmt.Errorf("disks: %w", err)
	}
	priv, pub, err := guest.GenerateHostKey()
	if err != nil {
		return fmt.Errorf("disks: host key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(vm.Dir, paths.VMHostKey), priv, 0o600); err != nil {
		return fmt.Errorf("disks: %w", err)
	}
	vm.SSHHostKey = pub
	// The two disks are independent files: make them at once.
	var g errgroup.Group
	g.Go(func() error {
		if err := mkfsExt4(ctx, filepath.Join(vm.Dir, paths.VMOverlay), "banger-overlay", vm.SystemOverlayBytes); err != nil {
			return fmt.Errorf("disks: system overlay: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		work := filepath.Join(vm.Dir, paths.VMWorkDisk)
		var err error
		if img.WorkSeedPath != "" {
			err = seedWorkDisk(ctx, img.WorkSeedPath, work, vm.WorkDiskBytes)
		} else {
			err = mkfsExt4(ctx, work, "banger-work", vm.WorkDiskBytes)
		}
		if err != nil {
			return fmt.Errorf("disks: work disk: %w", err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	return m.store.UpdateVM(ctx, *vm)
}

// destroy removes every trace of a VM: VMM, network, folder, row.
func (m *Manager) destroy(vm model.VMRecord) {
	m.halt(&vm)
	if vm.Dir != "" && strings.HasPrefix(vm.Dir, m.cfg.State.VMs()) {
		if err := os.RemoveAll(vm.Dir); err != nil {
			m.log.Error("remove vm folder", "vm", vm.Name, "dir", vm.Dir, "err", err)
		}
	}
	if err := m.store.DeleteVM(context.Background(), vm.ID); err != nil {
		m.log.Error("delete vm row", "vm", vm.Name, "err", err)
	}
}

// CreateStatus reads an operation.
func (m *Manager) CreateStatus(ctx context.Context, id string) (api.VMCreateOperation, error) {
	return m.store.GetOperation(ctx, id)
}

// maxStatusWait bounds how long WaitCreateStatus holds an answer.
const maxStatusWait = 5 * time.Second

// WaitCreateStatus reads an operation once it is no longer at stage or has
// ended, waiting at most maxStatusWait (then it answers as it is).
func (m *Manager) WaitCreateStatus(ctx context.Context, id, stage string) (api.VMCreateOperation, error) {
	timeout := time.NewTimer(maxStatusWait)
	defer timeout.Stop()
	for {
		changed := m.ops.changed() // before the read: no change is missed
		op, err := m.store.GetOperation(ctx, id)
		if err != nil || op.Done || op.Stage != stage {
			return op, err
		}
		select {
		case <-changed:
		case <-timeout.C:
			return op, nil
		case <-ctx.Done():
			return op, ctx.Err()
		}
	}
}

func authorizedLine(s ssh.Signer) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

// bootable refuses an image whose root filesystem banger does not hold: an
// older banger recorded registered files in place, and a VMM would open the
// caller's path by name, as root.
func bootable(img model.Image) error {
	if !img.Managed {
		return api.Errorf(api.ErrInvalid, "image %q uses %s in place (registered by an older banger): register it again so banger boots its own copy", img.Name, img.RootfsPath)
	}
	return nil
}
