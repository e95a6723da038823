package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"banger/internal/agent/initsys"
	"banger/internal/api"
	"banger/internal/model"
	"banger/internal/paths"
)

// The watchdog's marker is the prefix every line of banger's init starts with.
func TestInitMarkerIsInitLinePrefix(t *testing.T) {
	if initMarker != initsys.LinePrefix {
		t.Fatalf("initMarker %q != initsys.LinePrefix %q", initMarker, initsys.LinePrefix)
	}
}

// A guest whose kernel printed some lines and then hung before banger's
// init (the "PCI: Fatal" hang under TCG load) gets its VMM restarted, a
// bounded number of times, and the error names the last line.
func TestBootStuckBeforeInitIsRestarted(t *testing.T) {
	b := &fakeBackend{console: "Linux version 6.1.0\nPCI: Fatal: No config space access function found\n"}
	m, st, _ := newTestManager(t, b)
	op, err := m.Create(context.Background(), api.VMCreateParams{Name: "stuck", ImageName: "img"})
	if err != nil {
		t.Fatal(err)
	}
	done := waitOp(t, m, op.ID)
	if done.Success || !strings.Contains(done.Error, "did not reach banger's init") ||
		!strings.Contains(done.Error, "PCI: Fatal: No config space access function found") ||
		!strings.Contains(done.Error, "after 2 vmm restarts") {
		t.Fatalf("op = %+v", done)
	}
	if len(b.started) != 1+maxStallRestarts {
		t.Fatalf("vmm started %d times, want %d", len(b.started), 1+maxStallRestarts)
	}
	if _, err := st.GetVM(context.Background(), "stuck"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("vm row left: %v", err)
	}
}

// A guest that reached banger's init is never restarted by the watchdog,
// even when its agent then never answers.
func TestBootReachingInitIsNotRestarted(t *testing.T) {
	b := &fakeBackend{console: "Linux version 6.1.0\nbanger-init: stage 1 started kernel=6.1.0\n"}
	m, _, _ := newTestManager(t, b)
	m.cfg.ReadyTimeout = 3 * time.Second // well past the 300ms stall deadline
	op, err := m.Create(context.Background(), api.VMCreateParams{Name: "slow", ImageName: "img"})
	if err != nil {
		t.Fatal(err)
	}
	done := waitOp(t, m, op.ID)
	if done.Success || !strings.Contains(done.Error, "did not answer") || strings.Contains(done.Error, "restart") {
		t.Fatalf("op = %+v", done)
	}
	if len(b.started) != 1 {
		t.Fatalf("vmm started %d times, want 1", len(b.started))
	}
}

// Restarts are counted in the VM record, resume at the vmm step, and stop
// at maxStallRestarts.
func TestBootRestartsCounted(t *testing.T) {
	for _, stalls := range []int{0, 1, maxStallRestarts, maxStallRestarts + 1} {
		b := &fakeBackend{}
		m, _, _ := newTestManager(t, b)
		vm := &model.VMRecord{Name: "c", Dir: t.TempDir(), BootRestarts: 7}
		var ran []string
		left := stalls
		steps := []step{
			{"config", "boot", func(context.Context, *bootRun) error { ran = append(ran, "config"); return nil }},
			{vmmStep, "boot", func(context.Context, *bootRun) error { ran = append(ran, vmmStep); return nil }},
			{"agent", "agent", func(context.Context, *bootRun) error {
				ran = append(ran, "agent")
				if left > 0 {
					left--
					return &stallError{after: time.Second}
				}
				return nil
			}},
		}
		err := m.runSteps(context.Background(), &bootRun{vm: vm}, steps)
		wantRestarts := min(stalls, maxStallRestarts)
		if vm.BootRestarts != wantRestarts {
			t.Fatalf("%d stalls: BootRestarts = %d, want %d", stalls, vm.BootRestarts, wantRestarts)
		}
		if got := strings.Count(strings.Join(ran, " "), vmmStep); got != 1+wantRestarts {
			t.Fatalf("%d stalls: vmm step ran %d times (%v)", stalls, got, ran)
		}
		if ran[0] != "config" || strings.Count(strings.Join(ran, " "), "config") != 1 {
			t.Fatalf("%d stalls: a restart re-ran steps before vmm: %v", stalls, ran)
		}
		if stalls > maxStallRestarts {
			if !errors.Is(err, errBootStalled) || !strings.Contains(err.Error(), "printed nothing") {
				t.Fatalf("%d stalls: err = %v", stalls, err)
			}
		} else if err != nil {
			t.Fatalf("%d stalls: %v", stalls, err)
		}
	}
}

// The stall deadline grows with the host's load per CPU, within bounds.
func TestStallDeadlineScalesWithLoad(t *testing.T) {
	m := &Manager{cfg: Config{StallTimeout: 45 * time.Second}}
	for _, c := range []struct {
		load float64
		want time.Duration
	}{{0.1, 45 * time.Second}, {1, 45 * time.Second}, {2, 90 * time.Second}, {2.5, 112500 * time.Millisecond}, {50, 135 * time.Second}} {
		m.loadPerCPU = func() float64 { return c.load }
		if got := m.stallDeadline(); got != c.want {
			t.Errorf("load %v: deadline %s, want %s", c.load, got, c.want)
		}
	}
}

// The console follower sees the init marker across a line split between
// polls and after the log was rotated.
func TestConsoleProgress(t *testing.T) {
	log := filepath.Join(t.TempDir(), "serial.log")
	p := &consoleProgress{path: log}
	p.poll(time.Now())
	if p.initSeen || p.lastLine != "" {
		t.Fatalf("missing log: %+v", p)
	}
	os.WriteFile(log, []byte("kernel line one\nPCI: Fatal\nbanger-"), 0o600)
	p.poll(time.Now())
	if p.initSeen || p.lastLine != "banger-" {
		t.Fatalf("partial: initSeen %v lastLine %q", p.initSeen, p.lastLine)
	}
	f, _ := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("init: stage 1 started\n")
	f.Close()
	p.poll(time.Now())
	if !p.initSeen {
		t.Fatal("marker split across polls not seen")
	}

	q := &consoleProgress{path: log}
	os.WriteFile(log, []byte(strings.Repeat("x", 1000)+"\n"), 0o600)
	q.poll(time.Now())
	os.WriteFile(log, []byte("banger-init: after rotation\n"), 0o600) // smaller: rotated
	q.poll(time.Now())
	if !q.initSeen {
		t.Fatal("marker after rotation not seen")
	}
}

// A kernel that disabled its only timer (the starved APIC calibration
// under TCG) is restarted at once, not at the stall deadline, and the
// error names the line.
func TestBootWithFatalLineRestartedAtOnce(t *testing.T) {
	b := &fakeBackend{console: "Linux version 6.1.0\nAPIC frequency too slow, disabling apic timer\n"}
	m, _, _ := newTestManager(t, b)
	m.cfg.StallTimeout = time.Minute
	t0 := time.Now()
	op, err := m.Create(context.Background(), api.VMCreateParams{Name: "notimer", ImageName: "img"})
	if err != nil {
		t.Fatal(err)
	}
	done := waitOp(t, m, op.ID)
	if done.Success || !strings.Contains(done.Error, `printed "APIC frequency too slow, disabling apic timer"`) ||
		!strings.Contains(done.Error, "after 2 vmm restarts") {
		t.Fatalf("op = %+v", done)
	}
	if len(b.started) != 1+maxStallRestarts {
		t.Fatalf("vmm started %d times, want %d", len(b.started), 1+maxStallRestarts)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Fatalf("took %s: the fatal line did not cut the one-minute stall deadline", d)
	}
}

// The fatal line counts only before banger's init: a guest that got there
// printed it in some other context and is left alone.
func TestConsoleFatalLineOnlyBeforeInit(t *testing.T) {
	log := filepath.Join(t.TempDir(), "serial.log")
	os.WriteFile(log, []byte("x\nAPIC frequency too slow, disabling apic timer\n"), 0o600)
	p := &consoleProgress{path: log}
	p.poll(time.Now())
	if p.fatal == "" || p.initSeen {
		t.Fatalf("before init: %+v", p)
	}
	os.WriteFile(log, []byte("banger-init: stage 1\nAPIC frequency too slow, disabling apic timer\n"), 0o600)
	q := &consoleProgress{path: log}
	q.poll(time.Now())
	if q.fatal != "" || !q.initSeen {
		t.Fatalf("after init: %+v", q)
	}
	// Read in one go, the order still decides: a kernel left without a
	// tick can reach init (booted on one vCPU) and is lost all the same.
	os.WriteFile(log, []byte("APIC frequency too slow, disabling apic timer\nRun /init\nbanger-init: stage 1\n"), 0o600)
	r := &consoleProgress{path: log}
	r.poll(time.Now())
	if r.fatal == "" {
		t.Fatalf("fatal line before init in one read: %+v", r)
	}
}

// cpuFake is a backend that describes its vCPUs.
type cpuFake struct {
	fakeBackend
	state string
	err   error
}

func (c *cpuFake) CPUState(context.Context, string) (string, error) { return c.state, c.err }

// A stall is recorded in the VM folder before the VMM is stopped: the
// reason, the vCPUs and the console's tail, root-only; the next boot starts
// with no records of the last one.
func TestStallRecorded(t *testing.T) {
	b := &cpuFake{state: "RIP=ffffffff819c3742 read_current_timer"}
	m, _, _ := newTestManager(t, b)
	vm := &model.VMRecord{Name: "r", ID: "id1", Dir: t.TempDir()}
	os.WriteFile(filepath.Join(vm.Dir, paths.VMSerialLog), []byte("early\nx86: Booting SMP configuration:\n"), 0o600)
	os.WriteFile(filepath.Join(vm.Dir, paths.VMStallLog(3)), []byte("old"), 0o600)
	stalls := 2
	steps := []step{
		{vmmStep, "boot", func(context.Context, *bootRun) error { return nil }},
		{"agent", "agent", func(context.Context, *bootRun) error {
			if stalls > 0 {
				stalls--
				return &stallError{after: time.Second, fatal: fatalLines[0]}
			}
			return nil
		}},
	}
	if err := m.runSteps(context.Background(), &bootRun{vm: vm}, steps); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 2; n++ {
		p := filepath.Join(vm.Dir, paths.VMStallLog(n))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("record %d: %v", n, err)
		}
		for _, want := range []string{"stall " + strconv.Itoa(n) + " of VM r", fatalLines[0], b.state, "x86: Booting SMP configuration:"} {
			if !strings.Contains(string(data), want) {
				t.Errorf("record %d lacks %q:\n%s", n, want, data)
			}
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("record %d mode %v", n, fi.Mode())
		}
	}
	if _, err := os.Stat(filepath.Join(vm.Dir, paths.VMStallLog(3))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the previous boot's record was kept: %v", err)
	}
	// A backend that cannot describe its vCPUs still gets a record.
	b.err = errors.New("qmp gone")
	stalls = 1
	if err := m.runSteps(context.Background(), &bootRun{vm: vm}, steps); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(vm.Dir, paths.VMStallLog(1))); !strings.Contains(string(data), "vCPU state unavailable: qmp gone") {
		t.Errorf("record without vCPUs:\n%s", data)
	}
}
