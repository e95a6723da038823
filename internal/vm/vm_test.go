package vm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/network"
	"banger/internal/paths"
	"banger/internal/store"
	"banger/internal/vmm"

	"golang.org/x/crypto/ssh"
)

// fakeBackend records calls and fails Start on demand; it never runs a VMM.
type fakeBackend struct {
	startErr error
	started  []vmm.Spec
	quits    int
	// console is what each started guest writes on its serial console.
	console string

	mu sync.Mutex
	// running holds the run folders of the VMMs started and not quit.
	running map[string]bool
	// adoptable are the run folders Adopt finds a live VMM in.
	adoptable map[string]int
}

func (f *fakeBackend) Name() string   { return "fake" }
func (f *fakeBackend) Caps() vmm.Caps { return vmm.Caps{UserNet: true} }
func (f *fakeBackend) Start(_ context.Context, s vmm.Spec) (vmm.Process, error) {
	f.started = append(f.started, s)
	if f.console != "" {
		os.WriteFile(s.SerialLog, []byte(f.console), 0o600)
	}
	if err := vmm.CheckSpec(s, f.Caps()); err != nil {
		return vmm.Process{}, err
	}
	if f.startErr == nil {
		f.mu.Lock()
		if f.running == nil {
			f.running = map[string]bool{}
		}
		f.running[s.RunDir] = true
		f.mu.Unlock()
	}
	if f.startErr != nil {
		return vmm.Process{}, f.startErr
	}
	return vmm.Process{Backend: f.Name()}, nil
}
func (f *fakeBackend) Adopt(_ context.Context, runDir string) (vmm.Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pid, ok := f.adoptable[runDir]; ok {
		return vmm.Process{PID: pid, Backend: "fake"}, nil
	}
	return vmm.Process{}, vmm.ErrNotRunning
}
func (f *fakeBackend) Signal(string, syscall.Signal) error { return vmm.ErrNotRunning }
func (f *fakeBackend) Quit(_ context.Context, runDir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.quits++
	delete(f.running, runDir)
	return nil
}
func (f *fakeBackend) Wait(ctx context.Context, _ string) error {
	<-ctx.Done() // the fake VMM runs until asked to stop
	return ctx.Err()
}

// live lists the run folders of fake VMMs still running.
func (f *fakeBackend) live() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var dirs []string
	for d := range f.running {
		dirs = append(dirs, d)
	}
	return dirs
}

type fakeKernels struct{ kernel string }

func (k fakeKernels) BootFiles(_ context.Context, name string) (string, string, error) {
	if name != "k1" {
		return "", "", api.Errorf(api.ErrNotFound, "kernel %q not found", name)
	}
	return k.kernel, "", nil
}

func newTestManager(t *testing.T, b vmm.Backend) (*Manager, *store.Store, string) {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	st.InsertKernel(ctx, api.KernelEntry{Name: "k1"})
	rootfs := filepath.Join(dir, "rootfs.ext4")
	os.WriteFile(rootfs, make([]byte, 1<<20), 0o600)
	st.InsertImage(ctx, model.Image{ID: "img1", Name: "img", RootfsPath: rootfs, Managed: true, KernelRef: "k1", CreatedAt: time.Now()})
	agent := filepath.Join(dir, "agent")
	os.WriteFile(agent, []byte("#!/bin/sh\n"), 0o755)
	signer, err := guest.LoadOrCreateSigner(filepath.Join(dir, "id"))
	if err != nil {
		t.Fatal(err)
	}
	state := paths.State{Dir: filepath.Join(dir, "state")}
	m := New(ctx, Config{State: state, AgentPath: agent, ReadyTimeout: 10 * time.Second, StallTimeout: 300 * time.Millisecond},
		st, fakeKernels{kernel: rootfs}, network.NewUserMode("tests"), b, signer, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.loadPerCPU = func() float64 { return 1 }
	return m, st, state.VMs()
}

func waitOp(t *testing.T, m *Manager, id string) api.VMCreateOperation {
	t.Helper()
	for i := 0; i < 600; i++ {
		op, err := m.CreateStatus(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if op.Done {
			return op
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("operation never finished")
	return api.VMCreateOperation{}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	b := &fakeBackend{startErr: errors.New("qemu: boom")}
	m, st, vmsDir := newTestManager(t, b)
	op, err := m.Create(context.Background(), api.VMCreateParams{Name: "t1", ImageName: "img"})
	if err != nil {
		t.Fatal(err)
	}
	done := waitOp(t, m, op.ID)
	if done.Success || !strings.Contains(done.Error, "boom") {
		t.Fatalf("op = %+v", done)
	}
	if len(b.started) != 1 || b.quits == 0 {
		t.Fatalf("backend calls: started %d, quits %d", len(b.started), b.quits)
	}
	if _, err := st.GetVM(context.Background(), "t1"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("vm row left: %v", err)
	}
	if entries, _ := os.ReadDir(vmsDir); len(entries) != 0 {
		t.Fatalf("vm folders left: %v", entries)
	}
}

func TestCreateNoStartMakesSparseDisksAndDeleteRemovesThem(t *testing.T) {
	b := &fakeBackend{}
	m, st, _ := newTestManager(t, b)
	ctx := context.Background()
	userKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(m.signer.PublicKey()))) + " user@host"
	op, err := m.Create(ctx, api.VMCreateParams{Name: "t2", ImageName: "img", NoStart: true, WorkDiskSize: "2G",
		AuthorizedKeys: []string{userKey}})
	if err != nil {
		t.Fatal(err)
	}
	if done := waitOp(t, m, op.ID); !done.Success || done.VM == nil || done.VM.State != model.VMStopped {
		t.Fatalf("op = %+v", done)
	}
	if len(b.started) != 0 {
		t.Fatal("--no-start booted the vm")
	}
	vm, err := st.GetVM(ctx, "t2")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(vm.Dir, paths.VMWorkDisk)
	if fileSize(work) != 2<<30 || allocated(work) > 32<<20 {
		t.Fatalf("work disk size %d, allocated %d", fileSize(work), allocated(work))
	}
	if vm.SSHHostKey == "" {
		t.Fatal("no host key pinned")
	}
	if len(vm.AuthorizedKeys) != 1 || vm.AuthorizedKeys[0] != userKey {
		t.Fatalf("authorized keys = %q", vm.AuthorizedKeys)
	}
	if err := m.Delete(ctx, api.VMDeleteParams{IDOrName: "t2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(vm.Dir); !os.IsNotExist(err) {
		t.Fatalf("vm folder left: %v", err)
	}
}

func TestCreateValidation(t *testing.T) {
	m, _, _ := newTestManager(t, &fakeBackend{})
	ctx := context.Background()
	big, zero := 1<<20, 0
	for _, p := range []api.VMCreateParams{
		{Name: "-bad", ImageName: "img"},
		{Name: "UPPER", ImageName: "img"},
		{Name: "ok", ImageName: "missing"},
		{Name: "ok", ImageName: "img", VCPUCount: &big},
		{Name: "ok", ImageName: "img", VCPUCount: &zero},
		{Name: "ok", ImageName: "img", MemoryMiB: &big},
		{Name: "ok", ImageName: "img", WorkDiskSize: "12Q"},
		{Name: "ok", ImageName: "img", SystemOverlaySize: "1M"},
		{Name: "ok"},
		{Name: "ok", ImageName: "img", AuthorizedKeys: []string{"not a key"}},
	} {
		if _, err := m.Create(ctx, p); err == nil {
			t.Errorf("create %+v succeeded", p)
		}
	}
	if vms, _ := m.List(ctx); len(vms) != 0 {
		t.Fatalf("rejected creates left rows: %v", vms)
	}
}

func TestGeneratedNamesAreDNSLabels(t *testing.T) {
	for i := 0; i < 50; i++ {
		if n := generateName(); checkName(n) != nil {
			t.Fatalf("generated %q is not a DNS label", n)
		}
	}
}

// A guest whose console stays empty (an early-boot hang) gets its VMM
// restarted, a bounded number of times, then the create fails saying why.
func TestStalledBootIsRestartedThenFails(t *testing.T) {
	b := &fakeBackend{}
	m, st, vmsDir := newTestManager(t, b)
	op, err := m.Create(context.Background(), api.VMCreateParams{Name: "stall", ImageName: "img"})
	if err != nil {
		t.Fatal(err)
	}
	done := waitOp(t, m, op.ID)
	if done.Success || !strings.Contains(done.Error, "printed nothing") || !strings.Contains(done.Error, "after 2 vmm restarts") {
		t.Fatalf("op = %+v", done)
	}
	if len(b.started) != 1+maxStallRestarts {
		t.Fatalf("vmm started %d times, want %d", len(b.started), 1+maxStallRestarts)
	}
	if _, err := st.GetVM(context.Background(), "stall"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("vm row left: %v", err)
	}
	if entries, _ := os.ReadDir(vmsDir); len(entries) != 0 {
		t.Fatalf("vm folders left: %v", entries)
	}
}

// An image an older banger registered in place names a caller's file: no VM
// boots from it, and nothing is left behind.
func TestCreateRefusesAnImageUsedInPlace(t *testing.T) {
	m, st, vmsDir := newTestManager(t, &fakeBackend{})
	ctx := context.Background()
	st.InsertImage(ctx, model.Image{ID: "old1", Name: "old", RootfsPath: "/home/u/rootfs.ext4", KernelRef: "k1", CreatedAt: time.Now()})
	_, err := m.Create(ctx, api.VMCreateParams{Name: "t9", ImageName: "old"})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "register it again") {
		t.Fatalf("create from an in-place image: %v", err)
	}
	if vms, _ := st.ListVMs(ctx); len(vms) != 0 {
		t.Errorf("rows left: %v", vms)
	}
	if entries, _ := os.ReadDir(vmsDir); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}

// The VMM step records the backend a VM started on and why it runs under
// that accelerator, as the daemon says for that backend now.
func TestStartRecordsWhyItsAccelerator(t *testing.T) {
	b := &fakeBackend{}
	m, _, _ := newTestManager(t, b)
	for _, c := range []struct{ says, want string }{{"fake", "kvm probe: booted"}, {"other", ""}} {
		m.cfg.AccelReason = func(backend string) string {
			if backend == c.says {
				return "kvm probe: booted"
			}
			return ""
		}
		run := &bootRun{vm: &model.VMRecord{ID: "v1", Name: "v1", VCPUCount: 1, MemoryMiB: 128, Dir: t.TempDir()},
			img: model.Image{RootfsPath: "/img"}, kernel: "/k", report: func(string, string) {}}
		if err := m.stepVMM(context.Background(), run); err != nil {
			t.Fatal(err)
		}
		if run.vm.Backend != "fake" || run.vm.AccelReason != c.want {
			t.Fatalf("daemon says %q: backend %q, reason %q; want fake, %q", c.says, run.vm.Backend, run.vm.AccelReason, c.want)
		}
	}
}
