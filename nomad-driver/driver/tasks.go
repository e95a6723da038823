package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"banger/internal/api"
	"banger/internal/model"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// createTimeout bounds one VM create (under TCG a boot takes tens of seconds).
const createTimeout = 15 * time.Minute

// StartTask creates the task's VM and returns once it is ready (and its
// workspace, if any, copied in). A failure leaves no VM behind.
func (d *Driver) StartTask(cfg *drivers.TaskConfig) (*drivers.TaskHandle, *drivers.DriverNetwork, error) {
	if _, ok := d.tasks.get(cfg.ID); ok {
		return nil, nil, fmt.Errorf("task %s is already started", cfg.ID)
	}
	var tc TaskConfig
	if err := cfg.DecodeDriverConfig(&tc); err != nil {
		return nil, nil, fmt.Errorf("banger: decode task config: %w", err)
	}
	signer, keyPEM, err := newTaskKey()
	if err != nil {
		return nil, nil, err
	}
	params, err := tc.createParams(vmName(cfg), memoryMB(cfg), []string{authorizedLine(signer)})
	if err != nil {
		return nil, nil, err
	}
	var ws *WorkspaceBlock
	var wsParams api.VMWorkspacePrepareParams
	if tc.Workspace != nil {
		ws = tc.Workspace
		if wsParams, err = ws.workspaceParams(params.Name, cfg.TaskDir().Dir); err != nil {
			return nil, nil, err
		}
	}

	ctx, cancel := context.WithTimeout(d.ctx, createTimeout)
	defer cancel()
	vm, err := d.createVM(ctx, cfg, params)
	if err != nil {
		return nil, nil, err
	}
	if ws != nil {
		d.event(cfg, "Copying workspace "+ws.Source+" into the VM")
		if _, err := d.client().WorkspacePrepare(ctx, wsParams); err != nil {
			d.deleteVM(vm.ID)
			return nil, nil, fmt.Errorf("banger: workspace %s: %w", ws.Source, err)
		}
	}

	st := taskState{TaskConfig: cfg, VMID: vm.ID, VMName: vm.Name, StartedAt: time.Now().Round(time.Millisecond), KeyPEM: keyPEM}
	if vm.Network == "bridge" {
		st.GuestIP = vm.GuestIP
	}
	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = cfg
	handle.State = drivers.TaskStateRunning
	if err := handle.SetDriverState(&st); err != nil {
		d.deleteVM(vm.ID)
		return nil, nil, fmt.Errorf("banger: encode task state: %w", err)
	}
	h := newTaskHandle(cfg, st, signer)
	if !d.tasks.add(cfg.ID, h) {
		d.deleteVM(vm.ID)
		return nil, nil, fmt.Errorf("task %s is already started", cfg.ID)
	}
	d.runWatch(h)
	d.logger.Info("started task", "task", cfg.ID, "vm", vm.Name, "guest_ip", vm.GuestIP)
	return handle, h.network(), nil
}

// createVM asks the daemon for the VM and follows the create operation to
// its end, passing its stages on as task events.
func (d *Driver) createVM(ctx context.Context, cfg *drivers.TaskConfig, p api.VMCreateParams) (model.VMRecord, error) {
	c := d.client()
	op, err := c.VMCreate(ctx, p)
	if err != nil {
		return model.VMRecord{}, fmt.Errorf("banger: create vm %s: %w", p.Name, err)
	}
	stage := ""
	for !op.Done {
		if op.Stage != stage {
			stage = op.Stage
			d.event(cfg, "VM "+p.Name+": "+stage)
		}
		select {
		case <-ctx.Done():
			d.deleteVM(p.Name)
			return model.VMRecord{}, fmt.Errorf("banger: create vm %s: %w", p.Name, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		if op, err = c.VMCreateStatus(ctx, op.ID); err != nil {
			d.deleteVM(p.Name)
			return model.VMRecord{}, fmt.Errorf("banger: create vm %s: %w", p.Name, err)
		}
	}
	if !op.Success || op.VM == nil {
		return model.VMRecord{}, fmt.Errorf("banger: create vm %s: %s", p.Name, op.Error)
	}
	return *op.VM, nil
}

// deleteVM removes a VM the driver made, on a path that failed.
func (d *Driver) deleteVM(ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := d.client().VMDelete(ctx, api.VMDeleteParams{IDOrName: ref, Force: true})
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		d.logger.Error("delete vm after a failed start", "vm", ref, "error", err)
	}
}

func (d *Driver) runWatch(h *taskHandle) {
	go h.watch(d.ctx, d.client, d.pollInterval)
}

// RecoverTask re-attaches to a task's VM after the Nomad client restarted.
// A VM the daemon no longer knows is an error (Nomad then reschedules); an
// unreachable daemon is not: the VM outlives it and the watcher retries.
func (d *Driver) RecoverTask(handle *drivers.TaskHandle) error {
	if handle == nil || handle.Config == nil {
		return errors.New("banger: recover: no task handle")
	}
	if _, ok := d.tasks.get(handle.Config.ID); ok {
		return nil
	}
	var st taskState
	if err := handle.GetDriverState(&st); err != nil {
		return fmt.Errorf("banger: recover: decode task state: %w", err)
	}
	if st.VMID == "" {
		return errors.New("banger: recover: task state names no vm")
	}
	signer, err := parseTaskKey(st.KeyPEM)
	if err != nil {
		return fmt.Errorf("banger: recover: %w", err)
	}
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	vm, err := d.client().VMShow(ctx, st.VMID)
	if errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("banger: recover: vm %s (%s) no longer exists", st.VMName, st.VMID)
	}
	cfg := handle.Config
	if st.TaskConfig != nil {
		cfg = st.TaskConfig
	}
	h := newTaskHandle(cfg, st, signer)
	if err == nil {
		if res := exitOf(vm); res != nil {
			h.finish(res)
		}
	} else {
		d.logger.Warn("recover: daemon not answering, re-attaching anyway", "vm", st.VMName, "error", err)
	}
	if !d.tasks.add(cfg.ID, h) {
		return nil
	}
	d.runWatch(h)
	d.logger.Info("recovered task", "task", cfg.ID, "vm", st.VMName)
	return nil
}

// WaitTask returns a channel that yields the task's exit once its VM stops.
func (d *Driver) WaitTask(ctx context.Context, taskID string) (<-chan *drivers.ExitResult, error) {
	h, ok := d.tasks.get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	ch := make(chan *drivers.ExitResult, 1)
	go func() {
		defer close(ch)
		select {
		case <-h.done:
			ch <- h.status().ExitResult
		case <-ctx.Done():
		case <-d.ctx.Done():
		}
	}()
	return ch, nil
}

// StopTask powers the guest off, waiting at most timeout (the job's
// kill_timeout); then the VMM is killed. The signal is not used: a VM is
// stopped by its guest's power-off, not by a signal.
func (d *Driver) StopTask(taskID string, timeout time.Duration, signal string) error {
	h, ok := d.tasks.get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	if timeout < time.Second {
		timeout = time.Second
	}
	c := d.client()
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	_, err := c.VMStop(ctx, h.vmID)
	cancel()
	switch {
	case err == nil, errors.Is(err, api.ErrConflict), errors.Is(err, api.ErrNotFound):
	default:
		d.logger.Warn("guest did not power off in time, killing the vm", "vm", h.vmName, "error", err)
		kctx, kcancel := context.WithTimeout(d.ctx, time.Minute)
		_, kerr := c.VMKill(kctx, api.VMKillParams{IDOrName: h.vmID, Signal: "KILL"})
		kcancel()
		if kerr != nil && !errors.Is(kerr, api.ErrConflict) && !errors.Is(kerr, api.ErrNotFound) {
			return fmt.Errorf("banger: stop vm %s: %w (kill: %v)", h.vmName, err, kerr)
		}
	}
	h.check()
	return nil
}

// DestroyTask deletes the task's VM and forgets the task. A running task is
// refused unless force is set.
func (d *Driver) DestroyTask(taskID string, force bool) error {
	h, ok := d.tasks.get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	if h.running() && !force {
		return fmt.Errorf("banger: task %s is still running", taskID)
	}
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Minute)
	defer cancel()
	err := d.client().VMDelete(ctx, api.VMDeleteParams{IDOrName: h.vmID, Force: true})
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("banger: delete vm %s: %w", h.vmName, err)
	}
	h.finish(&drivers.ExitResult{ExitCode: 0})
	d.tasks.remove(taskID)
	return nil
}

// InspectTask reports the task's state, its VM and its address.
func (d *Driver) InspectTask(taskID string) (*drivers.TaskStatus, error) {
	h, ok := d.tasks.get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h.status(), nil
}

// memoryMB is the task's Nomad memory reservation.
func memoryMB(cfg *drivers.TaskConfig) int64 {
	if cfg.Resources == nil || cfg.Resources.NomadResources == nil {
		return 0
	}
	return cfg.Resources.NomadResources.Memory.MemoryMB
}

func (d *Driver) event(cfg *drivers.TaskConfig, msg string) {
	d.events.emit(&drivers.TaskEvent{TaskID: cfg.ID, TaskName: cfg.Name, AllocID: cfg.AllocID,
		Timestamp: time.Now(), Message: msg})
}
