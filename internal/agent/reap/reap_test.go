package reap

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const helperEnv = "BANGER_REAP_TEST_SUBREAPER"

// TestSubreaper re-runs this test binary as a child subreaper (the closest a
// test can get to PID 1: orphans are re-parented to it) with Loop running.
func TestSubreaper(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestSubreaperHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("subreaper helper failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestSubreaperHelper") {
		t.Fatalf("subreaper helper did not run:\n%s", out)
	}
}

func TestSubreaperHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper for TestSubreaper; runs only in its subprocess")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("prctl PR_SET_CHILD_SUBREAPER: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() { Loop(ctx); close(loopDone) }()
	waitFor(t, "loop running", Running)

	t.Run("exit code", func(t *testing.T) {
		st := run(t, exec.Command("sh", "-c", "exit 3"))
		if !st.Exited() || st.ExitStatus() != 3 {
			t.Fatalf("status = %v, want exit 3", st)
		}
	})
	t.Run("signal", func(t *testing.T) {
		st := run(t, exec.Command("sh", "-c", "kill -TERM $$"))
		if !st.Signaled() || st.Signal() != syscall.SIGTERM {
			t.Fatalf("status = %v, want killed by SIGTERM", st)
		}
	})
	t.Run("io copied", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("sh", "-c", "cat; echo out; echo err >&2")
		cmd.Stdin = strings.NewReader("in\n")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if st := run(t, cmd); st.ExitStatus() != 0 {
			t.Fatalf("status = %v, want 0", st)
		}
		if stdout.String() != "in\nout\n" || stderr.String() != "err\n" {
			t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Go(func() {
				wait, err := Start(exec.Command("sh", "-c", fmt.Sprintf("exit %d", i)))
				if err != nil {
					errs <- err
					return
				}
				st, err := wait()
				if err != nil {
					errs <- err
				} else if st.ExitStatus() != i {
					errs <- fmt.Errorf("command %d: got exit %d", i, st.ExitStatus())
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("orphans reaped", func(t *testing.T) {
		var stdout bytes.Buffer
		cmd := exec.Command("sh", "-c", "sleep 0.3 >/dev/null & echo $!")
		cmd.Stdout = &stdout
		run(t, cmd)
		pid, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
		if err != nil {
			t.Fatalf("orphan pid %q: %v", stdout.String(), err)
		}
		if ppid, ok := parentOf(pid); ok && ppid != os.Getpid() {
			t.Fatalf("orphan %d has parent %d, want this subreaper %d", pid, ppid, os.Getpid())
		}
		// A zombie keeps its /proc entry until reaped.
		waitFor(t, "orphan reaped", func() bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
			return os.IsNotExist(err)
		})
	})
	t.Run("start error", func(t *testing.T) {
		if _, err := Start(exec.Command("/nonexistent/banger-test")); err == nil {
			t.Fatal("Start of a missing binary succeeded")
		}
	})
	t.Run("pending at stop", func(t *testing.T) {
		wait, err := Start(exec.Command("sh", "-c", "sleep 0.3; exit 7"))
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		<-loopDone
		st, err := wait()
		if err != nil || st.ExitStatus() != 7 {
			t.Fatalf("after stop: status %v err %v, want exit 7", st, err)
		}
	})
	cancel()
}

func TestPlainMode(t *testing.T) {
	if Running() {
		t.Fatal("Loop unexpectedly running")
	}
	var stdout bytes.Buffer
	cmd := exec.Command("sh", "-c", "echo hi; exit 5")
	cmd.Stdout = &stdout
	st := run(t, cmd)
	if st.ExitStatus() != 5 || stdout.String() != "hi\n" {
		t.Fatalf("status %v stdout %q, want exit 5 and hi", st, stdout.String())
	}
}

func run(t *testing.T, cmd *exec.Cmd) syscall.WaitStatus {
	t.Helper()
	wait, err := Start(cmd)
	if err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	st, err := wait()
	if err != nil {
		t.Fatalf("wait %v: %v", cmd.Args, err)
	}
	return st
}

// parentOf reads the ppid of pid; ok is false if it already exited.
func parentOf(pid int) (int, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

// waitFor polls cond; the deadline only guards against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
