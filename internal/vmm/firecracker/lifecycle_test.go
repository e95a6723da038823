package firecracker

// Lifecycle tests run the test binary as a fake firecracker process (see
// fake_test.go): a real detached process with a real API socket, no KVM.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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

func fakeBackend(t *testing.T) *Backend {
	t.Helper()
	b, err := newBackend(Options{Binary: vmmtest.SelfAs(t, "firecracker"),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startFake starts a fake VM and makes sure it is killed after the test.
func startFake(t *testing.T, b *Backend, spec vmm.Spec) vmm.Process {
	t.Helper()
	p, err := b.Start(ctxT(t), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { b.Quit(context.Background(), spec.RunDir) })
	return p
}

func assertNoRuntimeFiles(t *testing.T, runDir string) {
	t.Helper()
	for _, name := range []string{PIDFile, APISocket} {
		if _, err := os.Stat(filepath.Join(runDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists (stat: %v)", name, err)
		}
	}
}

func TestStartAdoptQuit(t *testing.T) {
	b := fakeBackend(t)
	spec := testSpec(t)
	record := filepath.Join(t.TempDir(), "requests.jsonl")
	t.Setenv(envRecord, record)
	t.Setenv(envCADExit, "1")
	t.Setenv(envFake, "1")

	p := startFake(t, b, spec)
	if p.Backend != Name || p.PID <= 0 {
		t.Fatalf("process = %+v", p)
	}
	if pid, err := vmmproc.ReadPIDFile(filepath.Join(spec.RunDir, PIDFile)); err != nil || pid != p.PID {
		t.Errorf("pidfile = %d, %v; want %d", pid, err, p.PID)
	}
	if sid, err := unix.Getsid(p.PID); err != nil || sid != p.PID {
		t.Errorf("session of pid %d = %d, %v; want its own session", p.PID, sid, err)
	}
	argv, _ := vmmproc.Argv(p.PID)
	if !slices.Equal(argv, b.argv(spec.RunDir)) {
		t.Errorf("argv = %q, want %q", argv, b.argv(spec.RunDir))
	}
	if serial, _ := os.ReadFile(spec.SerialLog); !strings.Contains(string(serial), fakeBootMessage) {
		t.Errorf("serial log %q lacks the guest's output", serial)
	}
	if _, err := os.Stat(filepath.Join(spec.RunDir, FCLogFile)); err != nil {
		t.Errorf("firecracker log not created: %v", err)
	}
	var puts []string
	for _, r := range readRecorded(t, record) {
		if r.Method == "PUT" {
			puts = append(puts, r.Path)
		}
	}
	if len(puts) != 8 || puts[0] != "/machine-config" || puts[7] != "/actions" {
		t.Errorf("PUTs = %q, want machine-config ... actions", puts)
	}

	if _, err := b.Start(ctxT(t), spec); !errors.Is(err, api.ErrConflict) {
		t.Errorf("second Start: %v, want ErrConflict", err)
	}
	got, err := b.Adopt(ctxT(t), spec.RunDir)
	if err != nil || got != p {
		t.Errorf("Adopt = %+v, %v; want %+v", got, err, p)
	}
	if info, err := instanceInfo(ctxT(t), apiSocket(spec.RunDir)); err != nil || info.State != "Running" {
		t.Errorf("instance info = %+v, %v; want Running", info, err)
	}

	if err := b.Quit(ctxT(t), spec.RunDir); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	if !vmmproc.Exited(p.PID) {
		t.Errorf("pid %d still running after Quit", p.PID)
	}
	assertNoRuntimeFiles(t, spec.RunDir)
	if _, err := b.Adopt(ctxT(t), spec.RunDir); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("Adopt after Quit: %v, want ErrNotRunning", err)
	}
}

// Everything a real Start sends (through the fake firecracker process)
// matches Firecracker's API spec.
func TestStartRequestsMatchSwagger(t *testing.T) {
	doc := loadSwagger(t)
	b := fakeBackend(t)
	spec := testSpec(t)
	record := filepath.Join(t.TempDir(), "requests.jsonl")
	t.Setenv(envRecord, record)
	t.Setenv(envCADExit, "1")
	t.Setenv(envFake, "1")
	startFake(t, b, spec)
	if err := b.Quit(ctxT(t), spec.RunDir); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	reqs := readRecorded(t, record)
	if len(reqs) < 9 {
		t.Fatalf("recorded %d requests, want the readiness check, configuration and start", len(reqs))
	}
	for _, r := range reqs {
		if err := doc.checkRequest(r.Method, r.Path, r.Body); err != nil {
			t.Errorf("request does not match the spec: %v", err)
		}
	}
}

func TestSignalWaitQuit(t *testing.T) {
	b := fakeBackend(t)
	spec := testSpec(t)
	t.Setenv(envFake, "1")
	p := startFake(t, b, spec)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx, spec.RunDir); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a live vm: %v, want deadline exceeded", err)
	}
	if err := b.Signal(spec.RunDir, syscall.SIGSTOP); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	if err := b.Quit(ctxT(t), spec.RunDir); err != nil {
		t.Fatalf("Quit of a stopped process: %v", err)
	}
	if !vmmproc.Exited(p.PID) {
		t.Errorf("pid %d still running after Quit", p.PID)
	}
	assertNoRuntimeFiles(t, spec.RunDir)
	if err := b.Wait(ctxT(t), spec.RunDir); err != nil {
		t.Errorf("Wait on a gone vm: %v", err)
	}
	if err := b.Quit(ctxT(t), spec.RunDir); err != nil {
		t.Errorf("Quit of a gone vm: %v", err)
	}
	if err := b.Signal(spec.RunDir, syscall.SIGTERM); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("Signal of a gone vm: %v, want ErrNotRunning", err)
	}
}

func TestStartFailuresLeaveNothing(t *testing.T) {
	tests := []struct {
		name, env, value string
		want             []string
	}{
		{"api error", envFail, "/drives/d2", []string{"PUT /drives/d2: 400: fake failure on /drives/d2"}},
		{"exits at once", envExit, "kvm: permission denied", []string{"exited right after starting", "kvm: permission denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fakeBackend(t)
			spec := testSpec(t)
			t.Setenv(envFake, "1")
			t.Setenv(tt.env, tt.value)
			_, err := b.Start(ctxT(t), spec)
			if err == nil {
				b.Quit(context.Background(), spec.RunDir)
				t.Fatal("Start succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if procs := match(spec.RunDir).Find(); len(procs) > 0 {
				t.Errorf("processes left running: %+v", procs)
			}
			assertNoRuntimeFiles(t, spec.RunDir)
		})
	}
}

func TestStartRejectsBadSpecBeforeRunning(t *testing.T) {
	b := fakeBackend(t)
	spec := testSpec(t)
	spec.Net.Tap = ""
	t.Setenv(envFake, "1")
	_, err := b.Start(ctxT(t), spec)
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "tap device") {
		t.Errorf("Start = %v, want ErrInvalid about the tap", err)
	}
	if _, err := os.Stat(spec.RunDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run dir created for a rejected spec: %v", err)
	}
}

func TestAdoptNotRunning(t *testing.T) {
	b := fakeBackend(t)
	dir := t.TempDir()
	if _, err := b.Adopt(ctxT(t), dir); !errors.Is(err, vmm.ErrNotRunning) || !strings.Contains(err.Error(), "no pidfile") {
		t.Errorf("no pidfile: %v", err)
	}
	// A live pid that is not a firecracker (this test process).
	os.WriteFile(filepath.Join(dir, PIDFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
	if _, err := b.Adopt(ctxT(t), dir); !errors.Is(err, vmm.ErrNotRunning) || !strings.Contains(err.Error(), "pid reused") {
		t.Errorf("reused pid: %v", err)
	}
	os.WriteFile(filepath.Join(dir, PIDFile), []byte("junk"), 0o644)
	if _, err := b.Adopt(ctxT(t), dir); !errors.Is(err, vmm.ErrNotRunning) || !strings.Contains(err.Error(), "bad pidfile") {
		t.Errorf("bad pidfile: %v", err)
	}
}

// A firecracker of runDir whose API does not answer is not adopted.
func TestAdoptWithoutAPI(t *testing.T) {
	b := fakeBackend(t)
	spec := testSpec(t)
	t.Setenv(envFake, "1")
	t.Setenv(envNoAPI, "1")
	if err := os.MkdirAll(spec.RunDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd, exitedCh, err := b.launch(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); <-exitedCh })
	if err := vmmproc.WritePIDFile(filepath.Join(spec.RunDir, PIDFile), cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	for !match(spec.RunDir).Alive(cmd.Process.Pid) { // until the child has exec'd
		time.Sleep(10 * time.Millisecond)
	}
	_, err = b.Adopt(ctxT(t), spec.RunDir)
	if !errors.Is(err, vmm.ErrNotRunning) || !strings.Contains(err.Error(), "api socket") {
		t.Errorf("Adopt = %v, want ErrNotRunning about the api socket", err)
	}
}

// The command line Start runs is the one match recognises, and only for its
// own run directory.
func TestMatchRecognisesArgv(t *testing.T) {
	b := &Backend{binary: "/usr/bin/firecracker"}
	argv := b.argv("/run/banger/vm1")
	if !match("/run/banger/vm1").Of(argv) {
		t.Errorf("match(vm1) rejects its own firecracker: %q", argv)
	}
	if !match("/run/banger/vm1/").Of(argv) {
		t.Errorf("match(vm1/) rejects its own firecracker: %q", argv)
	}
	if match("/run/banger/vm2").Of(argv) {
		t.Errorf("match(vm2) accepts the firecracker of vm1: %q", argv)
	}
	other := append([]string{"/usr/bin/sleep"}, argv[1:]...)
	if match("/run/banger/vm1").Of(other) {
		t.Errorf("match accepts a program not named firecracker: %q", other)
	}
}
