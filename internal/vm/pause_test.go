package vm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"
)

// pausingBackend is a fake VMM that paused its guest on a full host disk.
type pausingBackend struct {
	fakeBackend
	mu      sync.Mutex
	reason  string
	resumes int
}

func (p *pausingBackend) IOPaused(context.Context, string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reason, nil
}

func (p *pausingBackend) Resume(context.Context, string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resumes++
	p.reason = ""
	return nil
}

func TestPausedOnFullDisk(t *testing.T) {
	b := &pausingBackend{reason: "host disk full"}
	m, st, vmsDir := newTestManager(t, b)
	ctx := context.Background()
	now := time.Now()
	if err := st.InsertVM(ctx, model.VMRecord{ID: "v1", Name: "full", State: model.VMRunning, ImageID: "img1",
		Dir: vmsDir + "/v1", GuestIP: "192.0.2.1", Network: "bridge", CreatedAt: now, StartedAt: &now}); err != nil {
		t.Fatal(err)
	}
	free := int64(1 << 20)
	m.freeSpace = func(string) (int64, error) { return free, nil }

	vms, err := m.List(ctx)
	if err != nil || len(vms) != 1 || vms[0].State != model.VMPaused || vms[0].PauseReason != "host disk full" {
		t.Fatalf("list: %+v, %v", vms, err)
	}
	if vm, _ := m.Show(ctx, "full"); vm.State != model.VMPaused || vm.PauseReason != "host disk full" {
		t.Fatalf("show: %+v", vm)
	}
	guests := guest.NewService(m, m.signer)
	h, err := guests.Health(ctx, "full")
	if err != nil || h.Healthy || len(h.Checks) != 1 || !strings.Contains(h.Checks[0].Detail, "paused: host disk full") {
		t.Fatalf("health: %+v, %v", h, err)
	}
	if _, _, err := guests.Dial(ctx, "full"); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "paused: host disk full") {
		t.Fatalf("guest op on a paused vm: %v", err)
	}
	if rec, _ := st.GetVM(ctx, "full"); rec.State != model.VMRunning {
		t.Fatalf("paused was stored: %s", rec.State)
	}

	// Still full: start refuses to resume and says how much is free.
	_, err = m.Start(ctx, "full")
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "only 1 MiB free") || b.resumes != 0 {
		t.Fatalf("start on a full disk: %v (resumes %d)", err, b.resumes)
	}
	free = 1 << 30
	vm, err := m.Start(ctx, "full")
	if err != nil || vm.State != model.VMRunning || b.resumes != 1 {
		t.Fatalf("start after freeing space: %+v, %v (resumes %d)", vm, err, b.resumes)
	}
	if vms, _ := m.List(ctx); vms[0].State != model.VMRunning || vms[0].PauseReason != "" {
		t.Fatalf("after resume: %+v", vms[0])
	}
	// Running again: start is a conflict as before.
	if _, err := m.Start(ctx, "full"); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("start on a running vm: %v", err)
	}

	// A paused VM stops without waiting for a guest that cannot answer.
	b.mu.Lock()
	b.reason = "host disk full"
	b.mu.Unlock()
	vm, err = m.Stop(ctx, "full")
	if err != nil || vm.State != model.VMStopped || !strings.Contains(vm.StopReason, "paused: host disk full") || b.quits == 0 {
		t.Fatalf("stop a paused vm: %+v, %v", vm, err)
	}
}
