package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"banger/internal/vmm/vmmproc"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on Linux).
const clockTicks = 100

// procTimes is what /proc/PID/stat says of one process: its parent and its
// CPU seconds, its own (user+system) and its waited-for children's.
type procTimes struct {
	ppid       int
	self, kids float64
}

// parseProcStat reads a /proc/PID/stat line. The command name is in
// parentheses and may hold spaces, so fields are counted after the last ')'.
func parseProcStat(stat string) (procTimes, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return procTimes{}, fmt.Errorf("stat %q: no command name", stat)
	}
	// After ')': state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime ...
	f := strings.Fields(stat[i+1:])
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("stat %q: %d fields after the name", stat, len(f))
	}
	var v [5]float64
	for j, k := range []int{1, 11, 12, 13, 14} {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return procTimes{}, fmt.Errorf("stat field %d: %w", k, err)
		}
		v[j] = float64(n)
	}
	return procTimes{ppid: int(v[0]), self: (v[1] + v[2]) / clockTicks, kids: (v[3] + v[4]) / clockTicks}, nil
}

// treeCPU is the CPU seconds process root and everything under it have
// used: the daemon, its QEMUs and helpers, live or already reaped.
func treeCPU(root int) (float64, error) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	procs := map[int]procTimes{}
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile: its time is in its parent's children
		}
		pt, err := parseProcStat(string(b))
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		procs[pid] = pt
	}
	if _, ok := procs[root]; !ok {
		return 0, fmt.Errorf("process %d is gone", root)
	}
	return sumTree(procs, root), nil
}

// sumTree adds the times of root and its descendants in procs.
func sumTree(procs map[int]procTimes, root int) float64 {
	total := 0.0
	for pid, pt := range procs {
		for p, hops := pid, 0; p > 0 && hops < 64; hops++ {
			if p == root {
				total += pt.self + pt.kids
				break
			}
			p = procs[p].ppid
		}
	}
	return total
}

// cpuMeter measures the CPU seconds a process tree used over some work.
type cpuMeter struct {
	root  int
	start float64
	err   error
}

func startCPU(root int) cpuMeter {
	s, err := treeCPU(root)
	return cpuMeter{root: root, start: s, err: err}
}

// used is the CPU seconds since start, or 0 when it could not be read.
func (m cpuMeter) used() float64 {
	s, err := treeCPU(m.root)
	if err != nil || m.err != nil {
		return 0
	}
	return s - m.start
}

// idleWindow is how long idle VMs' CPU use is measured.
const idleWindow = 10 * time.Second

// idleCPU measures the CPU the processes use over idleWindow, each in
// percent of one core.
func idleCPU(ctx context.Context, pids []int) ([]float64, error) {
	before := make([]float64, len(pids))
	for i, pid := range pids {
		cpu, _, err := vmmproc.ProcStats(pid)
		if err != nil {
			return nil, err
		}
		before[i] = cpu
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(idleWindow):
	}
	secs := time.Since(t0).Seconds()
	out := make([]float64, len(pids))
	for i, pid := range pids {
		cpu, _, err := vmmproc.ProcStats(pid)
		if err != nil {
			return nil, err
		}
		out[i] = 100 * (cpu - before[i]) / secs
	}
	return out, nil
}
