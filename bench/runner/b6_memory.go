package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// settle is how long VMs idle before their memory is read.
const settle = 5 * time.Second

// benchMemory is B6: bangerd's RSS idle and with N running VMs; the QEMU RSS
// of one idle banger VM against bare QEMU with the same guest memory.
func benchMemory(ctx context.Context, e *env) ([]Row, error) {
	idle, err := sampleRSS(ctx, e.d.pid(), e.cfg.runs)
	if err != nil {
		return nil, err
	}
	n := e.cfg.b6VMs
	all, _, retried, errs := createManyTimed(ctx, e, "b6", n, "--memory", strconv.Itoa(e.cfg.memory))
	// A create that failed is reported; the VMs that did start are measured.
	var vms []vm
	var fails runFailures
	for i, err := range errs {
		fails.add(err)
		if err == nil {
			vms = append(vms, all[i])
		}
	}
	if len(vms) == 0 {
		return []Row{{ID: "B6", Name: "bangerd RSS, idle", Unit: "MiB", Banger: summarize(idle)}},
			fmt.Errorf("every create failed: %w", fails.first)
	}
	time.Sleep(settle)
	busy, err := sampleRSS(ctx, e.d.pid(), e.cfg.runs)
	if err != nil {
		return nil, err
	}
	var qemu []float64
	var pids []int
	for _, v := range vms {
		pids = append(pids, v.PID)
		rss, err := rssBytes(v.PID)
		if err != nil {
			return nil, fmt.Errorf("qemu of %s: %w", v.Name, err)
		}
		qemu = append(qemu, mib(rss))
	}
	cpu, err := idleCPU(ctx, append(pids, e.d.pid()))
	if err != nil {
		return nil, fmt.Errorf("idle cpu: %w", err)
	}
	daemonCPU := cpu[len(pids)]
	cpu = cpu[:len(pids)]
	argv, err := procArgv(vms[0].PID)
	if err != nil {
		return nil, err
	}
	e.d.cli(ctx, "vm", "delete", "--all", "--force")

	// Bare QEMU: same binary, machine, accelerator, vCPUs, memory and
	// kernel, booting an initramfs whose init only sleeps.
	initrd := filepath.Join(e.cfg.work, "idle-initrd.cpio")
	if err := idleInitramfs(initrd); err != nil {
		return nil, err
	}
	bareN := min(e.cfg.runs, len(vms))
	var bare, bareCPU []float64
	for i := 0; i < bareN; i++ {
		bv, _, err := startBare(ctx, bareArgv(argv, initrd, false), "bench-idle-ready", 3*time.Minute)
		if err != nil {
			return nil, err
		}
		time.Sleep(settle)
		rss, err := rssBytes(bv.pid())
		var c []float64
		if err == nil {
			c, err = idleCPU(ctx, []int{bv.pid()})
		}
		bv.stop()
		if err != nil {
			return nil, err
		}
		bare, bareCPU = append(bare, mib(rss)), append(bareCPU, c[0])
	}
	r1 := Row{ID: "B6", Name: "bangerd RSS, idle", Unit: "MiB", Banger: summarize(idle),
		Note: fmt.Sprintf("%d samples 1 s apart", len(idle))}
	r2 := pairRow("B6", fmt.Sprintf("bangerd RSS with %d running VMs", len(vms)), "MiB", busy, "bangerd idle", idle)
	if retried > 0 {
		r2.Note = fmt.Sprintf("%d concurrent creates failed with \"database is locked\" and were retried", retried)
	}
	if fails.n > 0 {
		r2.Note = joinNotes(r2.Note, fmt.Sprintf("%d of %d creates failed (first: %s)", fails.n, n, firstLine(fails.first.Error())))
	}
	r3 := pairRow("B6", fmt.Sprintf("QEMU RSS of one idle VM (%d MiB guest)", e.cfg.memory), "MiB", qemu[:bareN],
		"bare QEMU, same kernel/machine/memory, init that sleeps", bare)
	r3.Note = fmt.Sprintf("banger figure over the first %d of %d VMs (all: median %s MiB), %s after ready", bareN, len(vms),
		fmtNum(summarize(qemu).Median), settle)
	r4 := pairRow("B6", fmt.Sprintf("CPU of one idle VM's QEMU, %% of a core (%d MiB guest)", e.cfg.memory), "%", cpu[:bareN],
		"bare QEMU, same guest, init that sleeps", bareCPU)
	r4.Note = fmt.Sprintf("over %s, %s after ready, with %d VMs running (all: median %s%%)", idleWindow, settle, len(vms),
		fmtNum(summarize(cpu).Median))
	r5 := Row{ID: "B6", Name: fmt.Sprintf("bangerd CPU with %d idle VMs, %% of a core", len(vms)), Unit: "%",
		Banger: summarize([]float64{daemonCPU}), Note: fmt.Sprintf("over %s, the same window as the row above", idleWindow)}
	return []Row{r1, r2, r3, r4, r5}, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// sampleRSS reads the RSS of pid n times, one second apart.
func sampleRSS(ctx context.Context, pid, n int) ([]float64, error) {
	var out []float64
	for i := 0; i < n; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Second):
			}
		}
		rss, err := rssBytes(pid)
		if err != nil {
			return nil, err
		}
		out = append(out, mib(rss))
	}
	return out, nil
}

// createManyTimed creates n VMs named prefix-0.. concurrently, each to
// ready, and returns each one's record, seconds from the common start to its
// create returning, and error. A create that fails with SQLite's "database
// is locked" (a banger bug seen under concurrent creates) is deleted and
// tried again, up to twice; retried counts those retries.
func createManyTimed(ctx context.Context, e *env, prefix string, n int, extra ...string) (vms []vm, secs []float64, retried int, errs []error) {
	vms, secs, errs = make([]vm, n), make([]float64, n), make([]error, n)
	tries := make([]int, n)
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%s-%d", prefix, i)
			for {
				vms[i], errs[i] = e.d.createVM(ctx, name, e.image, extra...)
				secs[i] = time.Since(t0).Seconds()
				if errs[i] == nil || !strings.Contains(errs[i].Error(), "database is locked") || tries[i] == 2 {
					return
				}
				tries[i]++
				e.d.deleteVM(ctx, name)
			}
		}()
	}
	wg.Wait()
	for i := range tries {
		retried += tries[i]
	}
	return vms, secs, retried, errs
}
