package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

type forkResult struct {
	Snapshot struct {
		Name string `json:"name"`
	} `json:"snapshot"`
	VMs []vm `json:"vms"`
}

// benchFork is B8: vm fork of a ready VM to the clone answering its agent
// against vm create to ready (B8a); 4 clones at once against one (B8b); an
// idle clone's QEMU PSS against its parent's (B8c); vm resume to the agent
// answering against vm create (B8d).
func benchFork(ctx context.Context, e *env) ([]Row, error) {
	mem := strconv.Itoa(e.cfg.memory)
	parent, err := e.d.createVM(ctx, "b8-par", e.image, "--memory", mem)
	if err != nil {
		return nil, err
	}
	timed := func(f func() error) (float64, error) {
		t0 := time.Now()
		err := f()
		return time.Since(t0).Seconds(), err
	}
	var create, fork, resume []float64
	for i := 0; i < e.cfg.runs; i++ {
		name := fmt.Sprintf("b8-c%d", i)
		s, err := timed(func() error { _, err := e.d.createVM(ctx, name, e.image, "--memory", mem); return err })
		if err != nil {
			return nil, err
		}
		create = append(create, s)
		e.d.deleteVM(ctx, name)

		var res forkResult
		s, err = timed(func() error {
			return e.d.cliJSON(ctx, &res, "vm", "fork", "b8-par", "--name", fmt.Sprintf("b8-f%d", i))
		})
		if err != nil {
			return nil, err
		}
		fork = append(fork, s)
		for _, v := range res.VMs {
			e.d.deleteVM(ctx, v.Name)
		}
		e.d.cli(ctx, "snapshot", "delete", res.Snapshot.Name)

		if _, err := e.d.cli(ctx, "vm", "suspend", "b8-par"); err != nil {
			return nil, err
		}
		s, err = timed(func() error { _, err := e.d.cli(ctx, "vm", "resume", "b8-par"); return err })
		if err != nil {
			return nil, err
		}
		resume = append(resume, s)
	}

	if _, err := e.d.cli(ctx, "vm", "snapshot", "b8-par", "--keep-running", "--name", "b8-snap"); err != nil {
		return nil, err
	}
	var one, four []float64
	var idleClone vm
	for i := 0; i < e.cfg.runs; i++ {
		for _, n := range []int{1, 4} {
			var res forkResult
			s, err := timed(func() error {
				return e.d.cliJSON(ctx, &res, "vm", "fork", "--from-snapshot", "b8-snap", "--count", strconv.Itoa(n), "--name", fmt.Sprintf("b8-n%d-%d", n, i))
			})
			if err != nil {
				return nil, err
			}
			if n == 1 {
				one = append(one, s)
			} else {
				four = append(four, s)
			}
			for j, v := range res.VMs {
				if i == 0 && n == 1 && j == 0 {
					idleClone = v
					continue
				}
				e.d.deleteVM(ctx, v.Name)
			}
		}
	}
	time.Sleep(settle)
	parentPSS, err := pssBytes(parent.PID)
	if err != nil {
		return nil, err
	}
	clonePSS, err := pssBytes(idleClone.PID)
	if err != nil {
		return nil, err
	}
	e.d.deleteVM(ctx, idleClone.Name)
	e.d.cli(ctx, "snapshot", "delete", "b8-snap")
	e.d.deleteVM(ctx, "b8-par")

	a := pairRow("B8a", "vm fork of a ready VM to the clone answering its agent", "s", fork, "vm create to ready", create)
	a.Goal = "ratio ≤ 0.25"
	a.Note = "fork includes the snapshot of the running parent"
	b := pairRow("B8b", "vm fork --count 4 from a snapshot", "s", four, "--count 1", one)
	b.Goal = "ratio ≤ 2"
	c := pairRow("B8c", "QEMU PSS of an idle clone", "MiB", []float64{mib(clonePSS)}, "its parent", []float64{mib(parentPSS)})
	c.Goal = "ratio ≤ 0.2"
	c.Note = fmt.Sprintf("%d MiB guests, %s after the clone was ready", e.cfg.memory, settle)
	d := pairRow("B8d", "vm resume of a suspended VM to its agent answering", "s", resume, "vm create to ready", create)
	d.Goal = "ratio ≤ 0.15"
	return []Row{a, b, c, d}, nil
}

// pssBytes is the proportional set size of pid (/proc/PID/smaps_rollup).
func pssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "Pss:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no Pss in /proc/%d/smaps_rollup", pid)
}
