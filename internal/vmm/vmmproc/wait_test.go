package vmmproc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitProc, the fallback without pidfds, behaves like Wait.
func TestWaitProc(t *testing.T) {
	dir := t.TempDir()
	pid, m := fakeVMM(t, dir)
	p := Proc{PID: pid, Match: m}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.waitProc(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitProc on a live process: %v, want deadline exceeded", err)
	}
	time.AfterFunc(50*time.Millisecond, func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err := p.waitProc(context.Background()); err != nil {
		t.Fatalf("waitProc: %v", err)
	}
	if !Exited(pid) {
		t.Errorf("waitProc returned while pid %d runs", pid)
	}
	// A pid that now runs another program counts as exited.
	if err := (Proc{PID: os.Getpid(), Match: m}).waitProc(context.Background()); err != nil {
		t.Errorf("waitProc on a reused pid: %v", err)
	}
}

func TestExited(t *testing.T) {
	if Exited(os.Getpid()) {
		t.Error("Exited(self) = true")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the exit without reaping: the child stays a zombie.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if !Exited(cmd.Process.Pid) {
		t.Errorf("Exited(zombie %d) = false", cmd.Process.Pid)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !Exited(cmd.Process.Pid) {
		t.Errorf("Exited(reaped %d) = false", cmd.Process.Pid)
	}
}
