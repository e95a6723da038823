package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const breakdownUsage = `banger-bench breakdown: where one create's time goes (B1), from the CLI's
wall time, the daemon's debug log (boot steps, agent answered, clock set) and
the guest's timestamped console lines, with a bare QEMU boot of the same argv
to place the guest's clock on the host's. Needs root.

Environment: BREAKDOWN_RUNS (default 5), BREAKDOWN_MEMORY (1024),
BREAKDOWN_SERIALS (a folder to keep each create's serial log in),
BREAKDOWN_KERNEL=microvm-6.1 (boot the built microvm kernel, found as for
B1, instead of the Debian cloud kernel), and
BENCH_BIN, BENCH_KERNEL_DIR, BENCH_IMAGE, BENCH_BRIDGE, BENCH_SUBNET,
BENCH_ACCEL as for the benchmarks.
`

// phase is one named part of a create, in seconds per run.
type phase struct {
	name string
	secs []float64
}

var (
	initLineRE = regexp.MustCompile(`banger-init: (?:WARNING: |ERROR: )?(.*?) uptime=([0-9.]+)s`)
	logTimeRE  = regexp.MustCompile(`^time=(\S+) `)
	logTookRE  = regexp.MustCompile(` step=(\S+) took=(\S+)`)
	// cpusOnlineKey is stage 1's line once the vCPUs the kernel did not
	// start are up (a TCG guest boots on one).
	cpusOnlineKey = "cpus online"
	initLineKey   = []string{"stage 1 started", "modules loaded", "boot config read", "root assembled",
		"switched root; starting stage 2", "stage 2 started", "network configured", "ssh listening"}
)

func breakdownMain(args []string) int {
	if len(args) > 0 {
		fmt.Print(breakdownUsage)
		return 2
	}
	cfg, err := loadConfig(newLogger())
	if err != nil {
		fmt.Fprintln(os.Stderr, "banger-bench breakdown:", err)
		return 2
	}
	runs, err1 := envInt("BREAKDOWN_RUNS", 5)
	mem, err2 := envInt("BREAKDOWN_MEMORY", 1024)
	if err1 != nil || err2 != nil || runs < 1 {
		fmt.Fprintln(os.Stderr, "banger-bench breakdown: bad BREAKDOWN_RUNS or BREAKDOWN_MEMORY")
		return 2
	}
	cfg.debug = true
	ctx, stop := signalContext()
	defer stop()
	defer func() {
		if !cfg.keep {
			os.RemoveAll(cfg.work)
		}
	}()
	d, err := startDaemon(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "banger-bench breakdown:", err)
		return 1
	}
	defer d.close()
	e := &env{cfg: cfg, d: d}
	if err := e.setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "banger-bench breakdown:", err)
		return 1
	}
	switch k := os.Getenv("BREAKDOWN_KERNEL"); k {
	case "", "debian-12-cloud":
	case "microvm-6.1":
		dir := microvmDir(cfg)
		if dir == "" {
			fmt.Fprintln(os.Stderr, "banger-bench breakdown: microvm-6.1 is not built (banger kernel pull microvm-6.1, or BENCH_MICROVM_DIR)")
			return 1
		}
		if e.image, err = microvmImage(ctx, e, dir); err != nil {
			fmt.Fprintln(os.Stderr, "banger-bench breakdown:", err)
			return 1
		}
	default:
		fmt.Fprintf(os.Stderr, "banger-bench breakdown: BREAKDOWN_KERNEL %q: want debian-12-cloud or microvm-6.1\n", k)
		return 1
	}
	out, err := breakdown(ctx, e, runs, strconv.Itoa(mem))
	if err != nil {
		fmt.Fprintln(os.Stderr, "banger-bench breakdown:", err)
		return 1
	}
	fmt.Print(out)
	return 0
}

func breakdown(ctx context.Context, e *env, runs int, mem string) (string, error) {
	warm, err := e.d.createVM(ctx, "bd-warm", e.image, "--memory", mem)
	if err != nil {
		return "", err
	}
	argv, err := procArgv(warm.PID)
	e.d.deleteVM(ctx, warm.Name)
	if err != nil {
		return "", err
	}
	floor := bareArgv(argv, "", true)
	phases := map[string]*phase{}
	var order []string
	add := func(name string, v float64) {
		p := phases[name]
		if p == nil {
			p = &phase{name: name}
			phases[name] = p
			order = append(order, name)
		}
		p.secs = append(p.secs, v)
	}
	for i := 0; i < runs; i++ {
		// Pre-kernel offset: host time from exec to init's first line minus
		// the guest uptime that line carries.
		bv, dFloor, ferr := startBareLine(ctx, floor, floorMarker, 3*time.Minute)
		bv.vm.stop()
		if ferr != nil {
			return "", ferr
		}
		up, ok := lineUptime(bv.line)
		if !ok {
			return "", fmt.Errorf("floor: no uptime in %q", bv.line)
		}
		offset := dFloor.Seconds() - up

		name := fmt.Sprintf("bd-%d", i)
		logOff := fileSize(e.d.logf.Name())
		t0 := time.Now()
		v, err := e.d.createVM(ctx, name, e.image, "--memory", mem)
		tCLI := time.Now()
		if err != nil {
			return "", err
		}
		serial, _ := os.ReadFile(filepath.Join(v.Dir, "serial.log"))
		if dir := os.Getenv("BREAKDOWN_SERIALS"); dir != "" {
			os.WriteFile(filepath.Join(dir, name+".serial.log"), serial, 0o644)
		}
		e.d.deleteVM(ctx, name)
		steps, marks := daemonTimes(e.d.logf.Name(), logOff, name)
		guest := guestTimes(serial)
		vmmEnd, okV := steps["vmm"]
		answered, okA := marks["guest agent answered"]
		if !okV || !okA || guest["ssh listening"] == 0 {
			return "", fmt.Errorf("run %d: missing timestamps (debug log or console lines)", i)
		}
		netStart := steps["network"].end.Add(-steps["network"].took)
		add("validate + disks (host)", netStart.Sub(t0).Seconds())
		for _, s := range []string{"network", "config", "initrd", "vmm"} {
			add("step "+s+" (host)", steps[s].took.Seconds())
		}
		add("QEMU start to guest clock 0 (from the bare floor)", offset)
		prev := 0.0
		for _, k := range initLineKey {
			if u, ok := guest[k]; ok {
				add("guest: to '"+k+"'", u-prev)
				prev = u
			}
		}
		if u, ok := guest[cpusOnlineKey]; ok {
			// Beside the rows above: stage 1 starts the other vCPUs in
			// the background once the modules are in (a TCG guest boots
			// on one), and stage 2 waits for them before ready.
			add("guest: other vCPUs started (in the background, from 'modules loaded')", u-guest["modules loaded"])
		}
		guest0 := vmmEnd.end.Add(time.Duration(offset * float64(time.Second)))
		listening := guest0.Add(time.Duration(guest["ssh listening"] * float64(time.Second)))
		add("ssh listening to agent answered (readiness check)", answered.Sub(listening).Seconds())
		if c, ok := marks["guest clock set"]; ok {
			add("clock set", c.Sub(answered).Seconds())
		}
		if r, ok := marks["vm ready"]; ok {
			add("daemon ready to CLI return (polling, exit)", tCLI.Sub(r).Seconds())
		}
		add("total: CLI wall time", tCLI.Sub(t0).Seconds())
		add("floor: bare QEMU to init's first line", dFloor.Seconds())
		e.cfg.log.Info("breakdown", "run", i, "create_s", tCLI.Sub(t0).Seconds(), "floor_s", dFloor.Seconds())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| part of `vm create` (%d runs, %s MiB) | median | min–max |\n|---|---|---|\n", runs, mem)
	for _, n := range order {
		s := summarize(phases[n].secs)
		fmt.Fprintf(&b, "| %s | %.3f s | %.3f–%.3f |\n", n, s.Median, s.Min, s.Max)
	}
	return b.String(), nil
}

type stepTime struct {
	end  time.Time
	took time.Duration
}

// daemonTimes reads the daemon log from off: each boot step's end and
// duration, and the times of the other debug marks, for VM name.
func daemonTimes(path string, off int64, name string) (map[string]stepTime, map[string]time.Time) {
	steps, marks := map[string]stepTime{}, map[string]time.Time{}
	f, err := os.Open(path)
	if err != nil {
		return steps, marks
	}
	defer f.Close()
	f.Seek(off, 0)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, " vm="+name+" ") && !strings.HasSuffix(l, " vm="+name) {
			continue
		}
		m := logTimeRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		if s := logTookRE.FindStringSubmatch(l); s != nil && strings.Contains(l, `msg="boot step"`) {
			if d, err := time.ParseDuration(s[2]); err == nil {
				steps[s[1]] = stepTime{end: t, took: d}
			}
			continue
		}
		for _, k := range []string{"guest agent answered", "guest clock set", "vm ready"} {
			if strings.Contains(l, `msg="`+k+`"`) {
				marks[k] = t
			}
		}
	}
	return steps, marks
}

// guestTimes maps init's console messages to their guest uptime (the
// last boot's, after a watchdog restart).
func guestTimes(serial []byte) map[string]float64 {
	out := map[string]float64{}
	for _, l := range bytes.Split(serial, []byte("\n")) {
		m := initLineRE.FindSubmatch(l)
		if m == nil {
			continue
		}
		msg := string(m[1])
		if msg == "stage 1 started" {
			clear(out)
		}
		for _, k := range append(initLineKey, cpusOnlineKey) {
			if strings.HasPrefix(msg, k) {
				if u, err := strconv.ParseFloat(string(m[2]), 64); err == nil {
					out[k] = u
				}
			}
		}
	}
	return out
}

func lineUptime(line string) (float64, bool) {
	m := initLineRE.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	u, err := strconv.ParseFloat(m[2], 64)
	return u, err == nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
