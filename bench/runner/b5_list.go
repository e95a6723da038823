package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// benchList is B5: `vm list` latency with many VM records in the store, p50
// and p99, against `ping` (the API round trip with no work), over the socket
// directly and through the CLI.
func benchList(ctx context.Context, e *env) ([]Row, error) {
	n := e.cfg.b5VMs
	if err := fillRecords(ctx, e, n); err != nil {
		return nil, err
	}
	var out []Row
	for _, m := range []struct {
		how   string
		calls int
		list  func() error
		ping  func() error
	}{
		{"API", e.cfg.b5Calls, func() error { return e.d.get(ctx, "/v1/vm/list") }, func() error { return e.d.get(ctx, "/v1/ping") }},
		{"CLI", max(e.cfg.b5Calls/5, 10), func() error { _, err := e.d.cli(ctx, "--json", "vm", "list"); return err },
			func() error { _, err := e.d.cli(ctx, "ping"); return err }},
	} {
		var l50, l99, p50, p99 []float64
		for i := 0; i < e.cfg.runs; i++ {
			lt, err := timeCalls(m.calls, m.list)
			if err != nil {
				return nil, err
			}
			pt, err := timeCalls(m.calls, m.ping)
			if err != nil {
				return nil, err
			}
			l50, l99 = append(l50, pct(lt, 50)), append(l99, pct(lt, 99))
			p50, p99 = append(p50, pct(pt, 50)), append(p99, pct(pt, 99))
		}
		what := "GET /v1/vm/list over the socket"
		base := "GET /v1/ping"
		if m.how == "CLI" {
			what, base = "banger --json vm list (process start included)", "banger ping"
		}
		r1 := pairRow("B5", fmt.Sprintf("%s, %d VMs, p50", what, n), "ms", l50, base+", p50", p50)
		r2 := pairRow("B5", fmt.Sprintf("%s, %d VMs, p99", what, n), "ms", l99, base+", p99", p99)
		r1.Note = fmt.Sprintf("%d calls per run", m.calls)
		r2.Note = r1.Note
		out = append(out, r1, r2)
	}
	return out, nil
}

// fillRecords creates n stopped VMs (--no-start, small disks), 4 at a time.
func fillRecords(ctx context.Context, e *env, n int) error {
	sem := make(chan struct{}, 4)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := e.d.cli(ctx, "vm", "create", "--no-start", "--name", fmt.Sprintf("b5-%03d", i), "--image", e.image,
				"--system-overlay-size", "64M", "--work-disk-size", "64M")
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// timeCalls runs f n times and returns each call's latency in ms.
func timeCalls(n int, f func() error) ([]float64, error) {
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		out = append(out, float64(time.Since(t0).Microseconds())/1000)
	}
	return out, nil
}
