package vm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/vmm"
)

// Start boots a stopped VM and waits until its agent answers.
func (m *Manager) Start(ctx context.Context, ref string) (model.VMRecord, error) {
	vm, unlock, err := m.lockedVM(ctx, ref)
	if err != nil {
		return vm, err
	}
	defer unlock()
	switch vm.State {
	case model.VMRunning:
		if reason := m.pauseReason(ctx, vm); reason != "" {
			return m.resume(ctx, vm, reason)
		}
		return vm, api.Errorf(api.ErrConflict, "vm %q is already running", vm.Name)
	case model.VMCreating:
		return vm, api.Errorf(api.ErrConflict, "vm %q is still being created", vm.Name)
	case model.VMSuspended:
		return vm, suspendedError(vm)
	}
	img, err := m.store.GetImage(ctx, vm.ImageID)
	if err != nil {
		return vm, fmt.Errorf("start vm %q: %w", vm.Name, err)
	}
	if err := bootable(img); err != nil {
		return vm, fmt.Errorf("start vm %q: %w", vm.Name, err)
	}
	if err := extendFile(filepath.Join(vm.Dir, paths.VMWorkDisk), vm.WorkDiskBytes); err != nil {
		return vm, fmt.Errorf("start vm %q: extend work disk: %w", vm.Name, err)
	}
	vm.PendingRestart = nil
	if err := m.boot(ctx, &bootRun{vm: &vm, img: img, report: func(string, string) {}}); err != nil {
		vm.State, vm.LastError = model.VMStopped, err.Error()
		if uerr := m.store.UpdateVM(context.Background(), vm); uerr != nil {
			m.log.Error("record failed start", "vm", vm.Name, "err", uerr)
		}
		return vm, fmt.Errorf("start vm %q: %w", vm.Name, err)
	}
	vm.State, vm.LastError = model.VMRunning, ""
	return vm, m.store.UpdateVM(ctx, vm)
}

// Stop asks the guest to power off, waits (bounded), then kills the VMM.
func (m *Manager) Stop(ctx context.Context, ref string) (model.VMRecord, error) {
	vm, unlock, err := m.lockedVM(ctx, ref)
	if err != nil {
		return vm, err
	}
	defer unlock()
	if vm.State != model.VMRunning && vm.State != model.VMSuspended {
		return vm, api.Errorf(api.ErrConflict, "vm %q is not running (state %s)", vm.Name, vm.State)
	}
	reason := m.powerOff(ctx, &vm)
	return vm, m.markStopped(ctx, &vm, reason)
}

// powerOff stops a running VM: guest power-off first, then the VMM is
// killed if it has not exited within StopTimeout. It returns the reason.
func (m *Manager) powerOff(ctx context.Context, vm *model.VMRecord) string {
	runDir := filepath.Join(vm.Dir, paths.VMRunDir)
	reason := "stopped by request"
	var c *guest.Client
	var err error
	if vm.State == model.VMSuspended {
		// A suspended guest cannot power off: its VMM is stopped at once.
		err = errors.New("suspended")
	} else if paused := m.pauseReason(ctx, *vm); paused != "" {
		// A paused guest cannot power off: its VMM is stopped at once.
		err = errors.New("paused: " + paused)
	} else {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err = guest.Dial(dctx, sshAddr(*vm), m.signer, vm.SSHHostKey)
		cancel()
	}
	if err == nil {
		err = c.Poweroff(ctx)
		c.Close()
	}
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, m.cfg.StopTimeout)
		err = m.backend.Wait(wctx, runDir)
		cancel()
	}
	if err != nil {
		reason = "killed: guest did not power off (" + firstLine(err.Error()) + ")"
		qctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if qerr := m.backend.Quit(qctx, runDir); qerr != nil && !errors.Is(qerr, vmm.ErrNotRunning) {
			m.log.Warn("quit vmm", "vm", vm.Name, "err", qerr)
		}
		cancel()
	}
	return reason
}

// markStopped records a stopped VM and releases its network.
func (m *Manager) markStopped(ctx context.Context, vm *model.VMRecord, reason string) error {
	if err := m.net.Detach(context.WithoutCancel(ctx), vm.ID); err != nil {
		m.log.Warn("detach network", "vm", vm.Name, "err", err)
	}
	now := time.Now().UTC()
	vm.State, vm.PID, vm.StoppedAt, vm.StopReason, vm.PendingRestart = model.VMStopped, 0, &now, reason, nil
	vm.TapDevice = ""
	return m.store.UpdateVM(context.WithoutCancel(ctx), *vm)
}

// Restart stops (when running) and starts a VM.
func (m *Manager) Restart(ctx context.Context, ref string) (model.VMRecord, error) {
	vm, err := m.store.GetVM(ctx, ref)
	if err != nil {
		return vm, err
	}
	if vm.State == model.VMRunning || vm.State == model.VMSuspended {
		if _, err := m.Stop(ctx, vm.ID); err != nil {
			return vm, err
		}
	}
	return m.Start(ctx, vm.ID)
}

var signals = map[string]syscall.Signal{"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "INT": syscall.SIGINT,
	"HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT}

// Kill sends a signal (default KILL) to the VM's VMM.
func (m *Manager) Kill(ctx context.Context, p api.VMKillParams) (model.VMRecord, error) {
	name := strings.TrimPrefix(strings.ToUpper(p.Signal), "SIG")
	if name == "" {
		name = "KILL"
	}
	sig, ok := signals[name]
	if !ok {
		return model.VMRecord{}, api.Errorf(api.ErrInvalid, "unknown signal %q (use KILL, TERM, INT, HUP, QUIT, USR1, USR2, STOP, CONT)", p.Signal)
	}
	vm, unlock, err := m.lockedVM(ctx, p.IDOrName)
	if err != nil {
		return vm, err
	}
	defer unlock()
	if vm.State != model.VMRunning {
		return vm, api.Errorf(api.ErrConflict, "vm %q is not running (state %s)", vm.Name, vm.State)
	}
	runDir := filepath.Join(vm.Dir, paths.VMRunDir)
	if err := m.backend.Signal(runDir, sig); err != nil {
		return vm, fmt.Errorf("kill vm %q: %w", vm.Name, err)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.backend.Wait(wctx, runDir)
		cancel()
		if err == nil {
			return vm, m.markStopped(ctx, &vm, "killed by SIG"+name)
		}
	}
	return vm, nil
}

// Delete removes a VM and everything it owns; a running VM only with Force.
func (m *Manager) Delete(ctx context.Context, p api.VMDeleteParams) error {
	vm, err := m.store.GetVM(ctx, p.IDOrName)
	if err != nil {
		return err
	}
	defer m.lock(vm.ID)()
	if vm, err = m.store.GetVM(ctx, vm.ID); err != nil {
		return err
	}
	if vm.State == model.VMCreating {
		return api.Errorf(api.ErrConflict, "vm %q is still being created; wait for it to finish", vm.Name)
	}
	if (vm.State == model.VMRunning || vm.State == model.VMSuspended) && !p.Force {
		return api.Errorf(api.ErrConflict, "vm %q is %s: stop it first or delete with --force", vm.Name, vm.State)
	}
	m.destroy(vm)
	m.log.Info("vm deleted", "vm", vm.Name)
	return nil
}

// Set changes settings: vCPUs and memory apply at next start, the work disk
// only grows (its file at once when stopped, else at next start; the guest
// grows the filesystem at boot), NAT and secrets apply live.
func (m *Manager) Set(ctx context.Context, p api.VMSetParams) (model.VMRecord, error) {
	vm, unlock, err := m.lockedVM(ctx, p.IDOrName)
	if err != nil {
		return vm, err
	}
	defer unlock()
	if vm.State == model.VMCreating {
		return vm, api.Errorf(api.ErrConflict, "vm %q is still being created", vm.Name)
	}
	running := vm.State == model.VMRunning || vm.State == model.VMSuspended
	next := vm
	pending := []string{}
	liveSecrets := false
	if len(p.Secrets) > 0 || len(p.NoSecrets) > 0 {
		if vm.State == model.VMSuspended {
			return vm, api.Errorf(api.ErrConflict, "vm %q is suspended: resume it first to change its secrets", vm.Name)
		}
		liveSecrets = running
		release := m.holdSecrets(p.Secrets)
		defer release()
		if next.Secrets, err = m.bindSecrets(ctx, vm.Secrets, p.Secrets, p.NoSecrets); err != nil {
			return vm, err
		}
		withSecretEgress(&next)
	}
	if p.VCPUCount != nil {
		next.VCPUCount = *p.VCPUCount
		pending = append(pending, "vcpu_count")
	}
	if p.MemoryMiB != nil {
		next.MemoryMiB = *p.MemoryMiB
		pending = append(pending, "memory_mib")
	}
	if err := checkResources(next.VCPUCount, next.MemoryMiB); err != nil {
		return vm, err
	}
	if p.WorkDiskSize != "" {
		size, err := diskSize("work disk size", p.WorkDiskSize)
		if err != nil {
			return vm, err
		}
		if size < vm.WorkDiskBytes {
			return vm, api.Errorf(api.ErrInvalid, "the work disk only grows: %s is smaller than its %d bytes", p.WorkDiskSize, vm.WorkDiskBytes)
		}
		work := filepath.Join(vm.Dir, paths.VMWorkDisk)
		if err := m.checkDiskSpace(diskRequest{what: "work disk size", text: p.WorkDiskSize, size: size, allocated: allocated(work)}); err != nil {
			return vm, err
		}
		next.WorkDiskBytes = size
		pending = append(pending, "work_disk_size")
	}
	if err := m.setEgress(ctx, &p, vm, &next); err != nil {
		return vm, err
	}
	if p.NATEnabled != nil && *p.NATEnabled != vm.NATEnabled {
		if running {
			if err := m.net.SetNAT(ctx, vm.ID, *p.NATEnabled); err != nil {
				return vm, fmt.Errorf("vm %q: %w", vm.Name, err)
			}
		}
		next.NATEnabled = *p.NATEnabled
	}
	if err := m.checkSecretPolicy(next); err != nil {
		return vm, err
	}
	if running {
		next.PendingRestart = mergePending(vm.PendingRestart, pending)
	} else if p.WorkDiskSize != "" {
		if err := extendFile(filepath.Join(vm.Dir, paths.VMWorkDisk), next.WorkDiskBytes); err != nil {
			return vm, fmt.Errorf("extend work disk: %w", err)
		}
	}
	if liveSecrets {
		if err := m.setSecretsLive(ctx, vm, next); err != nil {
			return vm, err
		}
		return next, nil
	}
	return next, m.store.UpdateVM(ctx, next)
}

func mergePending(a, b []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
