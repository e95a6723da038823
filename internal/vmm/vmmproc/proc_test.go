package vmmproc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"banger/internal/vmm"
)

func TestLookupNotRunning(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, pidfile, reason string
	}{
		{"no pidfile", "", "no pidfile in "},
		{"garbage pidfile", "hello\n", "bad pidfile"},
		{"exited pid", strconv.Itoa(dead.Process.Pid) + "\n", "has exited"},
		{"pid of another program", strconv.Itoa(os.Getpid()) + "\n", "is not the fakevmm of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.pidfile != "" {
				if err := os.WriteFile(filepath.Join(dir, "vmm.pid"), []byte(tt.pidfile), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := Match{Program: "fakevmm", Flag: "--sock", Path: filepath.Join(dir, "vmm.sock")}
			_, err := Lookup(dir, "vmm.pid", m)
			if !errors.Is(err, vmm.ErrNotRunning) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Lookup error = %v, want ErrNotRunning saying %q", err, tt.reason)
			}
		})
	}
}

func TestLookupLive(t *testing.T) {
	dir := t.TempDir()
	pid, m := fakeVMM(t, dir)
	p, err := Lookup(dir, "vmm.pid", m)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if p.PID != pid || p.Match != m || !slices.Contains(p.Argv, m.Path) {
		t.Errorf("Lookup = %+v, want pid %d with its argv", p, pid)
	}
	// The same pid seen from another run directory is a reused pid.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "vmm.pid"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	om := Match{Program: "fakevmm", Flag: "--sock", Path: filepath.Join(other, "vmm.sock")}
	if _, err := Lookup(other, "vmm.pid", om); !errors.Is(err, vmm.ErrNotRunning) || !strings.Contains(err.Error(), "pid reused") {
		t.Errorf("Lookup from another run dir: %v, want ErrNotRunning (pid reused)", err)
	}
}

func TestSignalAndWait(t *testing.T) {
	dir := t.TempDir()
	pid, m := fakeVMM(t, dir)
	p := Proc{PID: pid, Match: m}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a live process: %v, want deadline exceeded", err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	if err := p.Wait(context.Background()); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if !Exited(pid) {
		t.Errorf("pid %d still running after Wait", pid)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, vmm.ErrNotRunning) || !strings.Contains(err.Error(), "has exited") {
		t.Errorf("Signal of a gone process: %v, want ErrNotRunning", err)
	}
	if err := p.Kill(context.Background()); err != nil {
		t.Errorf("Kill of a gone process: %v", err)
	}
}

// A pid that runs another program is neither signalled nor waited for.
func TestSignalReusedPID(t *testing.T) {
	p := Proc{PID: os.Getpid(), Match: Match{Program: "fakevmm", Flag: "--sock", Path: "/nowhere/vmm.sock"}}
	if err := p.Signal(syscall.SIGKILL); !errors.Is(err, vmm.ErrNotRunning) {
		t.Errorf("Signal of a reused pid: %v, want ErrNotRunning", err)
	}
	if err := p.Wait(context.Background()); err != nil {
		t.Errorf("Wait on a reused pid: %v", err)
	}
	if err := p.Kill(context.Background()); err != nil {
		t.Errorf("Kill of a reused pid: %v", err)
	}
}

func TestKillStoppedProcess(t *testing.T) {
	dir := t.TempDir()
	pid, m := fakeVMM(t, dir)
	p := Proc{PID: pid, Match: m}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("Signal SIGSTOP: %v", err)
	}
	if err := p.Kill(context.Background()); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if !Exited(pid) {
		t.Errorf("pid %d still running after Kill", pid)
	}
}
