package driver

import (
	"context"
	"errors"
	"sync"
	"time"

	"banger/internal/api"
	"banger/internal/client"
	"banger/internal/model"

	"github.com/hashicorp/nomad/plugins/drivers"
	"golang.org/x/crypto/ssh"
)

// taskState is what Nomad keeps for a task (the task handle's driver
// state), enough to re-attach after the Nomad client restarts. KeyPEM is
// the task's own SSH key for exec; Nomad's client state is root-only.
type taskState struct {
	TaskConfig *drivers.TaskConfig
	VMID       string
	VMName     string
	GuestIP    string
	StartedAt  time.Time
	KeyPEM     []byte
}

// taskHandle is a running task: one VM, watched until it stops.
type taskHandle struct {
	cfg    *drivers.TaskConfig
	vmID   string
	vmName string
	ip     string
	signer ssh.Signer
	start  time.Time

	mu       sync.Mutex
	state    drivers.TaskState
	finished time.Time
	exit     *drivers.ExitResult
	done     chan struct{} // closed when the VM stopped or vanished
	poke     chan struct{} // asks the watcher to look now
	cancel   context.CancelFunc
}

func newTaskHandle(cfg *drivers.TaskConfig, st taskState, signer ssh.Signer) *taskHandle {
	return &taskHandle{cfg: cfg, vmID: st.VMID, vmName: st.VMName, ip: st.GuestIP, signer: signer,
		start: st.StartedAt, state: drivers.TaskStateRunning,
		done: make(chan struct{}), poke: make(chan struct{}, 1)}
}

// network is the VM's address as the task's network, so services with
// address_mode "driver" (or "auto") advertise the VM itself.
func (h *taskHandle) network() *drivers.DriverNetwork {
	if h.ip == "" {
		return nil
	}
	return &drivers.DriverNetwork{IP: h.ip, AutoAdvertise: true}
}

func (h *taskHandle) status() *drivers.TaskStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return &drivers.TaskStatus{
		ID:          h.cfg.ID,
		Name:        h.cfg.Name,
		State:       h.state,
		StartedAt:   h.start,
		CompletedAt: h.finished,
		ExitResult:  h.exit.Copy(),
		DriverAttributes: map[string]string{
			"vm_id":    h.vmID,
			"vm_name":  h.vmName,
			"guest_ip": h.ip,
		},
		NetworkOverride: h.network(),
	}
}

func (h *taskHandle) running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == drivers.TaskStateRunning
}

// finish records the task's end once.
func (h *taskHandle) finish(res *drivers.ExitResult) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state == drivers.TaskStateExited {
		return
	}
	h.state, h.exit, h.finished = drivers.TaskStateExited, res, time.Now()
	close(h.done)
}

// exitOf maps a VM record to the task's end, or nil while it runs. A VM the
// guest or a request stopped exits 0; a VM in error exits 1 with its error.
func exitOf(vm model.VMRecord) *drivers.ExitResult {
	switch vm.State {
	case model.VMRunning, model.VMPaused, model.VMCreating:
		return nil
	case model.VMError:
		msg := vm.LastError
		if msg == "" {
			msg = "vm is in state error"
		}
		return &drivers.ExitResult{ExitCode: 1, Err: errors.New(msg)}
	default:
		return &drivers.ExitResult{ExitCode: 0}
	}
}

// watch reads the VM's state every interval (or when poked) until it stops
// or disappears. An unreachable daemon is not an end: VMs outlive it.
func (h *taskHandle) watch(ctx context.Context, c func() *client.Client, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.done:
			return
		case <-t.C:
		case <-h.poke:
		}
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		vm, err := c().VMShow(qctx, h.vmID)
		cancel()
		switch {
		case errors.Is(err, api.ErrNotFound):
			h.finish(&drivers.ExitResult{ExitCode: 1, Err: errors.New("vm " + h.vmName + " no longer exists")})
			return
		case err != nil:
			continue
		}
		if res := exitOf(vm); res != nil {
			h.finish(res)
			return
		}
	}
}

// check asks the watcher to read the VM's state now.
func (h *taskHandle) check() {
	select {
	case h.poke <- struct{}{}:
	default:
	}
}

// taskStore holds the running tasks by Nomad task id.
type taskStore struct {
	mu    sync.RWMutex
	tasks map[string]*taskHandle
}

func newTaskStore() *taskStore { return &taskStore{tasks: map[string]*taskHandle{}} }

func (s *taskStore) get(id string) (*taskHandle, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.tasks[id]
	return h, ok
}

// add stores h unless the id is taken; it reports whether it did.
func (s *taskStore) add(id string, h *taskHandle) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[id]; ok {
		return false
	}
	s.tasks[id] = h
	return true
}

func (s *taskStore) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tasks, id)
}
