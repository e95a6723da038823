package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// benchDensity is B7: N VMs created concurrently to ready against the same N
// created one after another.
func benchDensity(ctx context.Context, e *env) ([]Row, error) {
	n := e.cfg.b7Count
	mem := strconv.Itoa(e.cfg.memory)
	retries := 0
	concurrent := func(i int) (float64, error) {
		t0 := time.Now()
		_, r, err := createMany(ctx, e, fmt.Sprintf("b7c%d", i), n, "--memory", mem)
		retries += r
		d := time.Since(t0).Seconds()
		e.d.cli(ctx, "vm", "delete", "--all", "--force")
		return d, err
	}
	sequential := func(i int) (float64, error) {
		t0 := time.Now()
		for j := 0; j < n; j++ {
			if _, err := e.d.createVM(ctx, fmt.Sprintf("b7s%d-%d", i, j), e.image, "--memory", mem); err != nil {
				return 0, err
			}
		}
		d := time.Since(t0).Seconds()
		e.d.cli(ctx, "vm", "delete", "--all", "--force")
		return d, nil
	}
	var con, seq []float64
	for i := 0; i < e.cfg.runs; i++ {
		var c, s float64
		var errC, errS error
		if i%2 == 0 {
			c, errC = concurrent(i)
			s, errS = sequential(i)
		} else {
			s, errS = sequential(i)
			c, errC = concurrent(i)
		}
		if errC != nil {
			return nil, errC
		}
		if errS != nil {
			return nil, errS
		}
		con, seq = append(con, c), append(seq, s)
		e.cfg.log.Info("B7", "run", i, "concurrent_s", c, "sequential_s", s)
	}
	r := pairRow("B7", fmt.Sprintf("%d VMs created concurrently, all ready", n), "s", con, fmt.Sprintf("the same %d one after another", n), seq)
	r.Note = fmt.Sprintf("%d MiB guests; BENCH_B7_COUNT sets N", e.cfg.memory)
	r.Goal = "ratio < 1"
	if retries > 0 {
		r.Note += fmt.Sprintf("; %d concurrent creates failed with \"database is locked\" and were retried (time included)", retries)
	}
	return []Row{r}, nil
}
