package vm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"banger/internal/model"
)

// TestBootSlotsBoundConcurrentBoots: with 2 slots, 5 boots at once never
// have more than 2 between the vmm step and the end of the agent step;
// queued boots are reported as such and all finish; the steps before the
// vmm step are not held back; a queued boot whose context ends gives up
// without running its vmm step.
func TestBootSlotsBoundConcurrentBoots(t *testing.T) {
	m, _, _ := newTestManager(t, &fakeBackend{})
	m.slots = newBootSlots(2)
	var inside, most, configs atomic.Int32
	release := make(chan struct{})
	steps := []step{
		{"config", "boot", func(context.Context, *bootRun) error { configs.Add(1); return nil }},
		{vmmStep, "boot", func(context.Context, *bootRun) error {
			n := inside.Add(1)
			for {
				old := most.Load()
				if n <= old || most.CompareAndSwap(old, n) {
					break
				}
			}
			return nil
		}},
		{"agent", "agent", func(context.Context, *bootRun) error {
			<-release
			inside.Add(-1)
			return nil
		}},
	}
	var wg sync.WaitGroup
	var queued atomic.Int32
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &bootRun{vm: &model.VMRecord{Name: "q", Dir: t.TempDir()}, report: func(stage, detail string) {
				if strings.HasPrefix(detail, "queued behind 2 booting guests") {
					queued.Add(1)
				}
			}}
			errs[i] = m.runSteps(context.Background(), b, steps)
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for (configs.Load() < 5 || queued.Load() < 3) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if configs.Load() != 5 || queued.Load() != 3 || inside.Load() != 2 {
		t.Fatalf("before any boot ended: %d configs ran, %d queued, %d booting; want 5, 3, 2", configs.Load(), queued.Load(), inside.Load())
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("boot %d: %v", i, err)
		}
	}
	if most.Load() != 2 {
		t.Fatalf("%d boots ran at once, want at most (and here exactly) 2", most.Load())
	}

	// A full house: a queued boot whose context ends never starts.
	m.slots <- struct{}{}
	m.slots <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ran := false
	err := m.runSteps(ctx, &bootRun{vm: &model.VMRecord{Name: "late", Dir: t.TempDir()}}, []step{
		{vmmStep, "boot", func(context.Context, *bootRun) error { ran = true; return nil }},
	})
	if err == nil || ran || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "boot slot") {
		t.Fatalf("queued boot past its context: ran %v, err %v", ran, err)
	}
}
