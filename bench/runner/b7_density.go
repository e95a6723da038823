package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// benchDensity is B7: N VMs created concurrently to ready against the same N
// created one after another, with every VM's own ready time in the
// concurrent runs (its spread) and the count of creates that failed.
func benchDensity(ctx context.Context, e *env) ([]Row, error) {
	n := e.cfg.b7Count
	mem := strconv.Itoa(e.cfg.memory)
	retries, failedVMs := 0, 0
	var perVM []float64
	var firstVMErr error
	var conCPU, seqCPU []float64
	concurrent := func(i int) (float64, error) {
		t0, cpu := time.Now(), startCPU(e.d.pid())
		_, secs, r, errs := createManyTimed(ctx, e, fmt.Sprintf("b7c%d", i), n, "--memory", mem)
		retries += r
		d := time.Since(t0).Seconds()
		conCPU = append(conCPU, cpu.used()/float64(n))
		e.d.cli(ctx, "vm", "delete", "--all", "--force")
		var err error
		for j, cerr := range errs {
			if cerr != nil {
				failedVMs++
				if err == nil {
					err = fmt.Errorf("%s: %w", fmt.Sprintf("b7c%d-%d", i, j), cerr)
				}
				continue
			}
			perVM = append(perVM, secs[j])
		}
		if err != nil && firstVMErr == nil {
			firstVMErr = err
		}
		return d, err
	}
	sequential := func(i int) (float64, error) {
		t0, cpu := time.Now(), startCPU(e.d.pid())
		for j := 0; j < n; j++ {
			if _, err := e.d.createVM(ctx, fmt.Sprintf("b7s%d-%d", i, j), e.image, "--memory", mem); err != nil {
				e.d.cli(ctx, "vm", "delete", "--all", "--force")
				return 0, err
			}
		}
		d := time.Since(t0).Seconds()
		seqCPU = append(seqCPU, cpu.used()/float64(n))
		e.d.cli(ctx, "vm", "delete", "--all", "--force")
		return d, nil
	}
	var con, seq []float64
	var fails runFailures
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
		fails.add(errC)
		fails.add(errS)
		if errC != nil || errS != nil {
			e.cfg.log.Warn("B7 run failed", "run", i, "concurrent_err", errC, "sequential_err", errS)
			continue
		}
		con, seq = append(con, c), append(seq, s)
		e.cfg.log.Info("B7", "run", i, "concurrent_s", c, "sequential_s", s)
	}
	if len(con) == 0 {
		return nil, fmt.Errorf("every run failed: %w", fails.first)
	}
	r := pairRow("B7", fmt.Sprintf("%d VMs created concurrently, all ready", n), "s", con, fmt.Sprintf("the same %d one after another", n), seq)
	r.Note = fmt.Sprintf("%d MiB guests; BENCH_B7_COUNT sets N", e.cfg.memory)
	r.Goal = "ratio ≤ 0.6, 0 failures"
	if retries > 0 {
		r.Note += fmt.Sprintf("; %d concurrent creates failed with \"database is locked\" and were retried (time included)", retries)
	}
	r.Note = joinNotes(r.Note, fails.note(e.cfg.runs))
	spread := Row{ID: "B7", Name: fmt.Sprintf("each VM's ready time among %d concurrent creates", n), Unit: "s",
		Banger: summarize(perVM), Goal: "0 failures",
		Note: fmt.Sprintf("%d VMs over %d runs, from the common start; p90 %s s; %d creates failed", len(perVM), e.cfg.runs,
			fmtNum(pctOr0(perVM, 90)), failedVMs)}
	if firstVMErr != nil {
		spread.Note += " (first: " + firstLine(firstVMErr.Error()) + ")"
	}
	cpuRow := pairRow("B7", fmt.Sprintf("host CPU per create, %d concurrent", n), "s", conCPU, "the same, one after another", seqCPU)
	cpuRow.Note = "CPU time of the daemon and its QEMUs over the whole run, ÷ N; a ratio above 1 is CPU that concurrency itself costs"
	return []Row{r, spread, cpuRow}, nil
}

func pctOr0(s []float64, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	return pct(s, p)
}
