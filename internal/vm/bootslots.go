package vm

import (
	"context"
	"fmt"
	"runtime"
)

// bootSlots bounds the guests that boot at once, each from its VMM's start
// to its agent answering. Under TCG a cold boot keeps a host core busy for
// its whole length: with more boots than cores they share the cores, all
// become ready late and together, and each costs more CPU than alone
// (B7: 1.30× the CPU per create with 10 at once on 2 cores). Queued, the
// first are ready in one boot's time and the whole batch sooner. A boot
// waits for its slot before its VMM starts, so the stall deadline and the
// ready timeout count only its own boot.
type bootSlots chan struct{}

// defaultBootSlots is the host's CPU count, at least 2 (so one stalled boot,
// which holds its slot until the watchdog restarts it, never stops the
// others).
func defaultBootSlots() int { return max(2, runtime.NumCPU()) }

func newBootSlots(n int) bootSlots {
	if n <= 0 {
		n = defaultBootSlots()
	}
	return make(bootSlots, n)
}

// acquire takes a slot, calling waiting first when none is free; it
// returns ctx's cause when ctx ends before one frees.
func (s bootSlots) acquire(ctx context.Context, waiting func(booting int)) error {
	select {
	case s <- struct{}{}:
		return nil
	default:
	}
	if waiting != nil {
		waiting(cap(s))
	}
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a boot slot: %w", context.Cause(ctx))
	}
}

func (s bootSlots) release() { <-s }
