package qemu

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
	"banger/internal/vmm/vmmtest"
)

// TestMain lets the test binary stand in for a qemu process: started with
// BANGER_FAKE_QEMU=1 it just sleeps.
func TestMain(m *testing.M) {
	if os.Getenv("BANGER_FAKE_QEMU") == "1" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeQEMU runs a sleeping process whose argv looks like the QEMU of runDir
// (argv[0] named qemu-fake, the extra arguments, -pidfile runDir/vmm.pid)
// and writes its pidfile.
func fakeQEMU(t *testing.T, runDir string, extra ...string) int {
	t.Helper()
	cmd := exec.Command(vmmtest.SelfAs(t, "qemu-fake"), append(extra, "-pidfile", filepath.Join(runDir, PIDFile))...)
	cmd.Env = append(os.Environ(), "BANGER_FAKE_QEMU=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	writePID(t, runDir, strconv.Itoa(cmd.Process.Pid)+"\n")
	// Wait until the child has exec'd, so /proc shows the fake argv.
	for !match(runDir).Alive(cmd.Process.Pid) {
		time.Sleep(10 * time.Millisecond)
	}
	return cmd.Process.Pid
}

func TestAdoptWithoutQMP(t *testing.T) {
	dir := t.TempDir()
	pid := fakeQEMU(t, dir)
	_, err := (&Backend{}).Adopt(context.Background(), dir)
	if !errors.Is(err, vmm.ErrNotRunning) || !strings.Contains(err.Error(), "qmp") ||
		!strings.Contains(err.Error(), strconv.Itoa(pid)) {
		t.Errorf("Adopt error = %v, want ErrNotRunning about pid %d and qmp", err, pid)
	}
}

func TestQuitWithoutQMPKills(t *testing.T) {
	dir := t.TempDir()
	pid := fakeQEMU(t, dir)
	b, err := New(Options{ForceTCG: true, Binary: os.Args[0], QuitTimeout: time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Quit(context.Background(), dir); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	if !vmmproc.Exited(pid) {
		t.Errorf("pid %d still running after Quit", pid)
	}
	assertNoRuntimeFiles(t, dir)
}

func TestSignalAndWait(t *testing.T) {
	dir := t.TempDir()
	pid := fakeQEMU(t, dir)
	b := &Backend{}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx, dir); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a live process: %v, want deadline exceeded", err)
	}
	if err := b.Signal(dir, syscall.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	if err := b.Wait(context.Background(), dir); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if !vmmproc.Exited(pid) {
		t.Errorf("pid %d still running after Wait", pid)
	}
}

// A QEMU of the run dir that its pidfile does not name (a daemon killed
// mid-start; the pid in QEMU's own namespace) is still stopped by Quit.
func TestQuitKillsVMMNotInPidfile(t *testing.T) {
	dir := t.TempDir()
	pid := fakeQEMU(t, dir)
	writePID(t, dir, "1\n")
	b, err := New(Options{ForceTCG: true, Binary: os.Args[0], QuitTimeout: time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Quit(context.Background(), dir); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	if !vmmproc.Exited(pid) {
		t.Errorf("pid %d still running after Quit", pid)
	}
	assertNoRuntimeFiles(t, dir)
}
