package vm

import (
	"context"
	"testing"
	"time"

	"banger/internal/api"
)

// WaitCreateStatus answers when the operation leaves the stage, not later.
func TestWaitCreateStatusWakesOnChange(t *testing.T) {
	m, st, _, _ := newFakeManager(t, &fakeBackend{})
	op := api.VMCreateOperation{ID: "op-w", VMName: "w", Stage: "boot", StartedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	if err := st.PutOperation(context.Background(), op); err != nil {
		t.Fatal(err)
	}
	tr := &opTracker{m: m, op: op}
	// A different stage answers at once.
	if got, err := m.WaitCreateStatus(testCtx(t), "op-w", "network"); err != nil || got.Stage != "boot" {
		t.Fatalf("got %+v, %v", got, err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		tr.stage("agent", "waiting for the guest agent")
	}()
	start := time.Now()
	got, err := m.WaitCreateStatus(testCtx(t), "op-w", "boot")
	if err != nil || got.Stage != "agent" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 2*time.Second {
		t.Fatalf("answered after %s, want right after the change (~200ms)", took)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		tr.finish(nil, context.Canceled)
	}()
	if got, err := m.WaitCreateStatus(testCtx(t), "op-w", "agent"); err != nil || !got.Done {
		t.Fatalf("after finish: %+v, %v", got, err)
	}
	if _, err := m.WaitCreateStatus(testCtx(t), "op-none", "boot"); err == nil {
		t.Fatal("unknown operation: want an error")
	}
}
