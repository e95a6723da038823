package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/guest/agenttest"
	"banger/internal/model"
	"banger/internal/network"
	"banger/internal/paths"
	"banger/internal/store"
)

// fakeNetwork attaches VMs in user mode, with SSH at sshPort, and records
// what it holds.
type fakeNetwork struct {
	sshPort int

	mu       sync.Mutex
	attached map[string]bool
	detached []string
}

func (n *fakeNetwork) Attach(_ context.Context, vmID string, _ bool) (network.Attachment, error) {
	att, err := network.NewUserMode("fake").Attach(context.Background(), vmID, false)
	if err != nil {
		return att, err
	}
	if n.sshPort != 0 {
		att.SSHHostPort = n.sshPort
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.attached == nil {
		n.attached = map[string]bool{}
	}
	n.attached[vmID] = true
	return att, nil
}

func (n *fakeNetwork) Detach(_ context.Context, vmID string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.attached, vmID)
	n.detached = append(n.detached, vmID)
	return nil
}

func (n *fakeNetwork) SetNAT(context.Context, string, bool) error { return nil }

// held lists the VMs still attached.
func (n *fakeNetwork) held() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []string
	for id := range n.attached {
		ids = append(ids, id)
	}
	return ids
}

func (n *fakeNetwork) wasDetached(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, d := range n.detached {
		if d == id {
			return true
		}
	}
	return false
}

// newFakeManager is newTestManager with a fake network.
func newFakeManager(t *testing.T, b *fakeBackend) (*Manager, *store.Store, *fakeNetwork, string) {
	t.Helper()
	m, st, vmsDir := newTestManager(t, b)
	n := &fakeNetwork{}
	m.net = n
	return m, st, n, vmsDir
}

// assertNothingLeft checks that VM name left no row, no folder, no running
// VMM and no network.
func assertNothingLeft(t *testing.T, st *store.Store, b *fakeBackend, n *fakeNetwork, vmsDir, name string) {
	t.Helper()
	if _, err := st.GetVM(context.Background(), name); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("vm row left: %v", err)
	}
	if entries, _ := os.ReadDir(vmsDir); len(entries) != 0 {
		t.Errorf("vm folders left: %v", entries)
	}
	if live := b.live(); len(live) != 0 {
		t.Errorf("vmms left running: %v", live)
	}
	if held := n.held(); len(held) != 0 {
		t.Errorf("network left attached: %v", held)
	}
}

// A create that fails at any stage or boot step removes everything it
// made: the failing step has done its work first (network attached, VMM
// started...), then fails.
func TestCreateFailureAtEachStepLeavesNothing(t *testing.T) {
	var names []string
	for _, s := range (&Manager{}).bootSteps() {
		names = append(names, s.name)
	}
	if strings.Join(names, " ") != "network config initrd vmm agent" {
		t.Fatalf("boot steps = %q; update this test and docs/architecture.md", names)
	}
	for _, failAt := range append([]string{"disks"}, names...) {
		t.Run(failAt, func(t *testing.T) {
			b := &fakeBackend{console: "banger-init: stage 1 started\n"}
			m, st, n, vmsDir := newFakeManager(t, b)
			image := "img"
			if failAt == "disks" {
				// The work disk's seed is missing: the overlay is made, then
				// the disk stage fails.
				st.InsertImage(context.Background(), model.Image{ID: "img2", Name: "noseed", RootfsPath: filepath.Join(t.TempDir(), "r"),
					WorkSeedPath: "/nonexistent/work-seed.ext4", Managed: true, KernelRef: "k1", CreatedAt: time.Now()})
				image = "noseed"
			}
			injected := fmt.Errorf("injected failure at %s", failAt)
			steps := m.steps
			m.steps = func() []step {
				all := steps()
				for i := range all {
					if all[i].name != failAt {
						continue
					}
					run := all[i].run
					all[i].run = func(ctx context.Context, br *bootRun) error {
						if failAt != "agent" { // the agent step would wait for a guest
							if err := run(ctx, br); err != nil {
								return err
							}
						}
						return injected
					}
				}
				return all
			}
			op, err := m.Create(context.Background(), api.VMCreateParams{Name: "f1", ImageName: image})
			if err != nil {
				t.Fatal(err)
			}
			done := waitOp(t, m, op.ID)
			want := injected.Error()
			if failAt == "disks" {
				want = "work disk"
			}
			if done.Success || !strings.Contains(done.Error, want) {
				t.Fatalf("op = %+v, want failure saying %q", done, want)
			}
			assertNothingLeft(t, st, b, n, vmsDir, "f1")
		})
	}
}

// addStoppedVM records a stopped VM (files made as create makes them) whose
// guest is a fake agent reached through n.
func addStoppedVM(t *testing.T, m *Manager, n *fakeNetwork, name string) model.VMRecord {
	t.Helper()
	a := agenttest.Start(t, m.signer.PublicKey(), agenttest.Options{Handle: healthyAgent})
	_, port, _ := net.SplitHostPort(a.Addr)
	n.sshPort, _ = strconv.Atoi(port)
	vm := model.VMRecord{ID: name + "-id", Name: name, State: model.VMStopped, ImageID: "img1", ImageName: "img",
		KernelName: "k1", VCPUCount: 1, MemoryMiB: 256, WorkDiskBytes: 64 << 20, SSHHostKey: a.HostKey,
		Dir: m.cfg.State.VM(name + "-id"), CreatedAt: time.Now()}
	if err := os.MkdirAll(filepath.Join(vm.Dir, paths.VMRunDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{paths.VMHostKey, paths.VMWorkDisk, paths.VMOverlay} {
		if err := os.WriteFile(filepath.Join(vm.Dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.store.InsertVM(context.Background(), vm); err != nil {
		t.Fatal(err)
	}
	return vm
}

// startVM starts a recorded VM through the real boot steps (fake VMM, fake
// network, fake agent).
func startVM(t *testing.T, m *Manager, name string) model.VMRecord {
	t.Helper()
	vm, err := m.Start(testCtx(t), name)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if vm.State != model.VMRunning {
		t.Fatalf("started vm is %s", vm.State)
	}
	return vm
}

// A guest that acknowledges the power-off but whose VMM never exits is
// killed once StopTimeout passes; its network is released.
func TestStopTimeoutFallsBackToKill(t *testing.T) {
	b := &fakeBackend{console: "banger-init: stage 1 started\n"}
	m, st, n, _ := newFakeManager(t, b)
	m.cfg.StopTimeout = 200 * time.Millisecond
	rec := addStoppedVM(t, m, n, "s1")
	startVM(t, m, "s1")
	if len(b.live()) != 1 || len(n.held()) != 1 {
		t.Fatalf("after start: vmms %v, network %v", b.live(), n.held())
	}
	vm, err := m.Stop(testCtx(t), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if vm.State != model.VMStopped || !strings.HasPrefix(vm.StopReason, "killed: guest did not power off") {
		t.Fatalf("stopped vm: state %s, reason %q", vm.State, vm.StopReason)
	}
	if len(b.live()) != 0 || len(n.held()) != 0 {
		t.Fatalf("after stop: vmms %v, network %v", b.live(), n.held())
	}
	got, err := st.GetVM(context.Background(), rec.ID)
	if err != nil || got.State != model.VMStopped || got.PID != 0 || got.StoppedAt == nil {
		t.Fatalf("stored vm after stop: %+v, %v", got, err)
	}
}

// A running VM is deleted only with force, and then nothing is left.
func TestDeleteRunningVM(t *testing.T) {
	b := &fakeBackend{console: "banger-init: stage 1 started\n"}
	m, st, n, vmsDir := newFakeManager(t, b)
	addStoppedVM(t, m, n, "d1")
	startVM(t, m, "d1")
	err := m.Delete(testCtx(t), api.VMDeleteParams{IDOrName: "d1"})
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("delete of a running vm without force: %v, want ErrConflict", err)
	}
	if len(b.live()) != 1 {
		t.Fatalf("refused delete stopped the vmm: %v", b.live())
	}
	if err := m.Delete(testCtx(t), api.VMDeleteParams{IDOrName: "d1", Force: true}); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, st, b, n, vmsDir, "d1")
}

// At daemon start a VM whose VMM answers is re-adopted, a dead one is
// marked stopped (network released), a half-created one and an orphan
// folder are removed, and an unfinished create operation is failed.
func TestReconcile(t *testing.T) {
	b := &fakeBackend{adoptable: map[string]int{}}
	m, st, n, vmsDir := newFakeManager(t, b)
	ctx := context.Background()
	add := func(name string, state model.VMState) model.VMRecord {
		vm := model.VMRecord{ID: name + "-id", Name: name, State: state, ImageID: "img1", NATEnabled: true,
			Dir: m.cfg.State.VM(name + "-id"), CreatedAt: time.Now()}
		if err := os.MkdirAll(filepath.Join(vm.Dir, paths.VMRunDir), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := st.InsertVM(ctx, vm); err != nil {
			t.Fatal(err)
		}
		return vm
	}
	alive := add("alive", model.VMRunning)
	b.adoptable[filepath.Join(alive.Dir, paths.VMRunDir)] = 4242
	dead := add("dead", model.VMRunning)
	half := add("half", model.VMCreating)
	if err := st.PutOperation(ctx, api.VMCreateOperation{ID: "op-half", VMID: half.ID, VMName: half.Name, Stage: "boot",
		StartedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(vmsDir, "orphan-id")
	if err := os.MkdirAll(orphan, 0o700); err != nil {
		t.Fatal(err)
	}

	live, err := m.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || !live[alive.ID] {
		t.Errorf("live = %v, want only %s (with NAT)", live, alive.ID)
	}
	if got, err := st.GetVM(ctx, alive.ID); err != nil || got.State != model.VMRunning || got.PID != 4242 {
		t.Errorf("re-adopted vm: %+v, %v", got, err)
	}
	if got, err := st.GetVM(ctx, dead.ID); err != nil || got.State != model.VMStopped || !strings.Contains(got.StopReason, "exited while the daemon was down") {
		t.Errorf("dead vm: %+v, %v", got, err)
	}
	if !n.wasDetached(dead.ID) {
		t.Error("the dead vm's network was not released")
	}
	if _, err := st.GetVM(ctx, half.ID); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("half-created vm row: %v", err)
	}
	for _, dir := range []string{half.Dir, orphan} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", dir, err)
		}
	}
	if _, err := os.Stat(alive.Dir); err != nil {
		t.Errorf("the live vm's folder: %v", err)
	}
	op, err := st.GetOperation(ctx, "op-half")
	if err != nil || !op.Done || op.Success || !strings.Contains(op.Error, `during stage "boot"`) {
		t.Errorf("unfinished operation: %+v, %v", op, err)
	}
}
