package qemu

// Integration tests: they run the real qemu-system-x86_64 (TCG) on a real
// kernel (vmmtest.Kernel). The guest has no root file system, so its kernel
// boots, panics and stays up (no panic= timeout), which is all they need.
// Their names start with TestQEMU.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/api"
	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
	"banger/internal/vmm/vmmtest"
)

func testBackend(t *testing.T, opts Options) *Backend {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test runs qemu; skipped with -short")
	}
	if _, err := exec.LookPath(DefaultBinary); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	opts.ForceTCG = true
	opts.Logger = slog.New(slog.DiscardHandler)
	b, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// testSpec is a small VM: one writable disk, user-mode networking with an
// ssh forward, serial console to a log.
func testSpec(t *testing.T, kernel string) vmm.Spec {
	t.Helper()
	dir := t.TempDir()
	disk := filepath.Join(dir, "work.ext4")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return vmm.Spec{
		RunDir: filepath.Join(dir, "run"),
		Kernel: kernel, Cmdline: "console=ttyS0", VCPUs: 1, MemoryMiB: 256,
		Disks:     []vmm.Disk{{Path: disk, Serial: "banger-work"}},
		Net:       &vmm.Net{MAC: "02:00:0a:00:00:02", SSHHostPort: freePort(t)},
		SerialLog: filepath.Join(dir, "run", "serial.log"),
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func start(t *testing.T, b *Backend, spec vmm.Spec) vmm.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := b.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Quit(context.Background(), spec.RunDir); err != nil {
			t.Errorf("cleanup Quit: %v", err)
		}
	})
	return p
}

// statFields returns /proc/PID/stat fields after the command name.
func statFields(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
}

func assertNoRuntimeFiles(t *testing.T, runDir string) {
	t.Helper()
	for _, name := range []string{PIDFile, QMPSocket} {
		if _, err := os.Stat(filepath.Join(runDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (stat: %v)", name, err)
		}
	}
}

// waitForLog polls path until it contains every want, or fails after a bound.
func waitForLog(t *testing.T, path string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		missing := ""
		for _, w := range want {
			if !bytes.Contains(data, []byte(w)) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serial log %s never showed %q; it has:\n%s", path, missing, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestQEMUStartAdoptQuit(t *testing.T) {
	b := testBackend(t, Options{})
	spec := testSpec(t, vmmtest.Kernel(t))
	p := start(t, b, spec)
	ctx := context.Background()

	if p.PID <= 0 || p.Backend != NameTCG || b.Name() != NameTCG {
		t.Fatalf("Start = %+v (Name %s), want a pid and %s", p, b.Name(), NameTCG)
	}
	st := statFields(t, p.PID)
	mySID, err := unix.Getsid(0)
	if err != nil {
		t.Fatal(err)
	}
	if sid, _ := strconv.Atoi(st[3]); sid == mySID {
		t.Errorf("vmm pid %d shares the test's session %d", p.PID, sid)
	}
	if pid, err := vmmproc.ReadPIDFile(filepath.Join(spec.RunDir, PIDFile)); err != nil || pid != p.PID {
		t.Errorf("pidfile = %d, %v; want %d", pid, err, p.PID)
	}

	got, err := b.Adopt(ctx, spec.RunDir)
	if err != nil || got != p {
		t.Fatalf("Adopt = %+v, %v; want %+v", got, err, p)
	}
	if s, err := status(ctx, spec.RunDir); err != nil || s.Status != "running" {
		t.Errorf("Status = %+v, %v; want running", s, err)
	}
	if _, rss, err := vmmproc.ProcStats(p.PID); err != nil || rss <= 0 {
		t.Errorf("ProcStats = rss %d, %v", rss, err)
	}
	// The guest kernel runs, with the TCG TSC hint on its command line.
	waitForLog(t, spec.SerialLog, "Linux version", "tsc_early_khz="+strconv.Itoa(b.mode().tscKHz))

	if _, err := b.Start(ctx, spec); !errors.Is(err, api.ErrConflict) {
		t.Errorf("second Start on a running vm: %v, want ErrConflict", err)
	}

	if err := b.Quit(ctx, spec.RunDir); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	if !vmmproc.Exited(p.PID) {
		t.Errorf("pid %d still running after Quit", p.PID)
	}
	assertNoRuntimeFiles(t, spec.RunDir)
	if _, err := b.Adopt(ctx, spec.RunDir); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("Adopt after Quit: %v, want ErrNotRunning", err)
	}
	if err := b.Wait(ctx, spec.RunDir); err != nil {
		t.Errorf("Wait after Quit: %v", err)
	}
}

func TestQEMUAdoptRejectsOtherVM(t *testing.T) {
	b := testBackend(t, Options{})
	spec := testSpec(t, vmmtest.Kernel(t))
	p := start(t, b, spec)
	ctx := context.Background()

	// A run dir whose pidfile names another VM's live qemu (pid reuse).
	other := t.TempDir()
	writePID(t, other, strconv.Itoa(p.PID)+"\n")
	if _, err := b.Adopt(ctx, other); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("Adopt of another vm's qemu: %v, want ErrNotRunning", err)
	}
	if err := b.Signal(other, syscall.SIGKILL); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("Signal via another vm's pidfile: %v, want ErrNotRunning", err)
	}
	if err := b.Quit(ctx, other); err != nil {
		t.Errorf("Quit of a stale run dir: %v", err)
	}
	if got, err := b.Adopt(ctx, spec.RunDir); err != nil || got.PID != p.PID {
		t.Errorf("the real vm was disturbed: Adopt = %+v, %v", got, err)
	}
}

func TestQEMUSignalWait(t *testing.T) {
	b := testBackend(t, Options{})
	spec := testSpec(t, vmmtest.Kernel(t))
	p := start(t, b, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	waited := make(chan error, 1)
	go func() { waited <- b.Wait(ctx, spec.RunDir) }()
	if err := b.Signal(spec.RunDir, syscall.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if !vmmproc.Exited(p.PID) {
		t.Errorf("pid %d still running after Wait returned", p.PID)
	}
	if _, err := b.Adopt(ctx, spec.RunDir); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("Adopt after SIGTERM: %v, want ErrNotRunning", err)
	}
}

func TestQEMUQuitKillsStoppedVMM(t *testing.T) {
	b := testBackend(t, Options{QuitTimeout: time.Second})
	spec := testSpec(t, vmmtest.Kernel(t))
	p := start(t, b, spec)

	// A stopped qemu cannot answer QMP; Quit must fall back to SIGKILL.
	if err := b.Signal(spec.RunDir, syscall.SIGSTOP); err != nil {
		t.Fatalf("Signal SIGSTOP: %v", err)
	}
	if err := b.Quit(context.Background(), spec.RunDir); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	if !vmmproc.Exited(p.PID) {
		t.Errorf("pid %d still running after Quit", p.PID)
	}
	assertNoRuntimeFiles(t, spec.RunDir)
}

func TestQEMUStartMissingKernel(t *testing.T) {
	b := testBackend(t, Options{})
	spec := testSpec(t, filepath.Join(t.TempDir(), "no-such-vmlinuz"))
	_, err := b.Start(context.Background(), spec)
	if err == nil {
		b.Quit(context.Background(), spec.RunDir)
		t.Fatal("Start with a missing kernel succeeded")
	}
	msg := err.Error()
	t.Logf("Start error: %s", msg)
	if !strings.Contains(msg, "could not open kernel file") || !strings.Contains(msg, filepath.Join(spec.RunDir, LogFile)) {
		t.Errorf("error %q does not quote qemu's message and the log path", msg)
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	assertNoRuntimeFiles(t, spec.RunDir)
	if pids := match(spec.RunDir).Find(); len(pids) > 0 {
		t.Errorf("qemu processes left behind: %v", pids)
	}
}

func TestQEMUStartCanceled(t *testing.T) {
	b := testBackend(t, Options{})
	spec := testSpec(t, vmmtest.Kernel(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.Start(ctx, spec)
	if !errors.Is(err, context.Canceled) {
		b.Quit(context.Background(), spec.RunDir)
		t.Fatalf("Start with a canceled context: %v, want context.Canceled", err)
	}
	assertNoRuntimeFiles(t, spec.RunDir)
	if pids := match(spec.RunDir).Find(); len(pids) > 0 {
		t.Errorf("qemu processes left behind: %v", pids)
	}
}

func TestQEMUStartTap(t *testing.T) {
	b := testBackend(t, Options{})
	if os.Geteuid() != 0 {
		t.Skip("tap networking needs root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("tap networking needs /dev/net/tun: %v", err)
	}
	spec := testSpec(t, vmmtest.Kernel(t))
	tap := "bgq" + strconv.Itoa(os.Getpid()%1000000)
	spec.Net = &vmm.Net{Tap: tap, MAC: "02:00:0a:00:00:09"}
	start(t, b, spec)
	// QEMU (root) created the tap device and holds it open.
	if _, err := os.Stat("/sys/class/net/" + tap); err != nil {
		t.Fatalf("tap %s not attached: %v", tap, err)
	}
	if err := b.Quit(context.Background(), spec.RunDir); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	if _, err := os.Stat("/sys/class/net/" + tap); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tap %s outlived qemu (stat: %v)", tap, err)
	}
}

// CPUState describes a running guest's vCPU: registers, local APIC, the
// code at its instruction pointer and its stack.
func TestQEMUCPUState(t *testing.T) {
	b := testBackend(t, Options{})
	spec := testSpec(t, vmmtest.Kernel(t))
	start(t, b, spec)
	waitForLog(t, spec.SerialLog, "Linux version")
	s, err := b.CPUState(context.Background(), spec.RunDir)
	if err != nil {
		t.Fatalf("CPUState: %v\n%s", err, s)
	}
	_, code, _ := strings.Cut(s, "(qemu) x/12i 0x")
	if !strings.Contains(code, "\n0xffffffff") {
		t.Errorf("no disassembly at the instruction pointer:\n%s", s)
	}
	for _, want := range []string{"(qemu) info registers -a", "RIP=", "(qemu) info lapic 0", "LVTT", "== vCPU 0 ==", "(qemu) x/32gx 0x"} {
		if !strings.Contains(s, want) {
			t.Errorf("CPUState lacks %q:\n%s", want, s)
		}
	}
	if err := b.Quit(context.Background(), spec.RunDir); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CPUState(context.Background(), spec.RunDir); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("CPUState of a stopped VM: %v, want ErrNotRunning", err)
	}
}
