package sshd

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestHostWaiterWakesOnSignal: with O_ASYNC on a pipe (which, like a
// virtio console port, raises SIGIO when data arrives), the waiter sleeps
// until the pipe signals, not until its idle bound; a signal that came
// before the wait is kept for it; and with nothing coming it waits its
// whole bound.
func TestHostWaiterWakesOnSignal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	hw, err := newHostWaiter(r)
	if err != nil {
		t.Fatalf("newHostWaiter on a pipe: %v", err)
	}
	defer hw.close()
	sw, ok := hw.(*sigioWaiter)
	if !ok {
		t.Fatalf("waiter is %T, want the SIGIO one", hw)
	}
	sw.idle = time.Minute
	ctx := context.Background()

	go func() {
		time.Sleep(200 * time.Millisecond)
		w.Write([]byte("x"))
	}()
	t0 := time.Now()
	hw.wait(ctx)
	if d := time.Since(t0); d > 30*time.Second {
		t.Fatalf("wait returned after %v: the write's SIGIO did not wake it", d)
	}

	// A signal before the wait is not lost.
	r.Read(make([]byte, 1))
	w.Write([]byte("y"))
	time.Sleep(100 * time.Millisecond)
	t0 = time.Now()
	hw.wait(ctx)
	if d := time.Since(t0); d > 30*time.Second {
		t.Fatalf("wait after an earlier signal took %v", d)
	}

	// Nothing arriving: the wait lasts its bound.
	sw.idle = 300 * time.Millisecond
	t0 = time.Now()
	hw.wait(ctx)
	if d := time.Since(t0); d < 300*time.Millisecond {
		t.Fatalf("wait with no signal returned after %v, before its bound", d)
	}
}
