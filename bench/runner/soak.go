package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"banger/internal/paths"
)

const soakUsage = `banger-bench soak: many creates against a real daemon; reports failures,
boot restarts (a guest that stalled before banger's init and was restarted by
the watchdog) and per-create ready time (median, p90). Needs root.

Environment (and BENCH_BIN, BENCH_OUT, BENCH_BRIDGE, BENCH_SUBNET, BENCH_ACCEL,
BENCH_KERNEL_DIR, BENCH_IMAGE, BENCH_KEEP as for the benchmarks):
  SOAK_N        creates per mode (default 200)
  SOAK_PAR      creates at a time in the "par" mode (default 10)
  SOAK_MODES    comma-separated: seq, par (default seq,par)
  SOAK_MEMORY   guest MiB (default 256)
  SOAK_KERNEL_ARGS  extra guest kernel arguments for a debug run
                (e.g. "loglevel=7 initcall_debug"), passed to bangerd as
                BANGER_GUEST_KERNEL_ARGS

Each create is deleted once ready. Serial logs of boots that never reached
banger's init (failed creates and watchdog restarts alike) are kept in
BENCH_OUT/soak-TIME/stalled/, with the daemon's log.
`

// soakResult is one create.
type soakResult struct {
	Mode     string  `json:"mode"`
	Name     string  `json:"name"`
	Seconds  float64 `json:"seconds"`
	Restarts int     `json:"boot_restarts"`
	Err      string  `json:"error,omitempty"`
}

// soakSummary is one mode's outcome.
type soakSummary struct {
	Mode     string  `json:"mode"`
	N        int     `json:"n"`
	Par      int     `json:"par"`
	Failures int     `json:"failures"`
	Restarts int     `json:"boot_restarts"`
	Median   float64 `json:"median_s"`
	P90      float64 `json:"p90_s"`
	Max      float64 `json:"max_s"`
	Wall     string  `json:"wall"`
	LoadEnd  string  `json:"loadavg_end"`
}

func soakMain(args []string) int {
	if len(args) > 0 {
		fmt.Print(soakUsage)
		return 2
	}
	log := newLogger()
	cfg, err := loadConfig(log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "banger-bench soak:", err)
		return 2
	}
	n, err1 := envInt("SOAK_N", 200)
	par, err2 := envInt("SOAK_PAR", 10)
	mem, err3 := envInt("SOAK_MEMORY", 256)
	for _, e := range []error{err1, err2, err3} {
		if e != nil {
			fmt.Fprintln(os.Stderr, "banger-bench soak:", e)
			return 2
		}
	}
	modes := strings.Split(envStr("SOAK_MODES", "seq,par"), ",")
	for _, m := range modes {
		if m != "seq" && m != "par" {
			fmt.Fprintf(os.Stderr, "banger-bench soak: SOAK_MODES: unknown mode %q (seq, par)\n", m)
			return 2
		}
	}
	if extra := os.Getenv("SOAK_KERNEL_ARGS"); extra != "" {
		os.Setenv("BANGER_GUEST_KERNEL_ARGS", extra)
	}
	out := filepath.Join(cfg.out, "soak-"+time.Now().UTC().Format("20060102-150405"))
	if err := os.MkdirAll(filepath.Join(out, "stalled"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "banger-bench soak:", err)
		return 1
	}
	ctx, stop := signalContext()
	defer stop()
	defer func() {
		if !cfg.keep {
			os.RemoveAll(cfg.work)
		}
	}()
	d, err := startDaemon(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "banger-bench soak:", err)
		return 1
	}
	e := &env{cfg: cfg, d: d}
	if err := e.setup(ctx); err != nil {
		d.close()
		fmt.Fprintln(os.Stderr, "banger-bench soak:", err)
		return 1
	}
	capCtx, capStop := context.WithCancel(ctx)
	capDone := make(chan struct{})
	go func() {
		captureStalls(capCtx, filepath.Join(d.state, "vms"), filepath.Join(out, "stalled"))
		close(capDone)
	}()
	accel := e.accel()
	log.Info("soak", "accel", accel, "n", n, "par", par, "modes", modes, "out", out)
	var all []soakResult
	var sums []soakSummary
	for _, mode := range modes {
		k := 1
		if mode == "par" {
			k = max(1, par)
		}
		t0 := time.Now()
		res := soakRun(ctx, e, mode, n, k, strconv.Itoa(mem))
		sums = append(sums, summarizeSoak(mode, k, res, time.Since(t0)))
		all = append(all, res...)
		if ctx.Err() != nil {
			break
		}
	}
	capStop()
	<-capDone
	if data, err := os.ReadFile(d.logf.Name()); err == nil {
		os.WriteFile(filepath.Join(out, "bangerd.log"), data, 0o644)
	}
	d.close()
	js, _ := json.MarshalIndent(map[string]any{"summary": sums, "creates": all, "accel": accel,
		"kernel_args": os.Getenv("SOAK_KERNEL_ARGS")}, "", "  ")
	os.WriteFile(filepath.Join(out, "soak.json"), js, 0o644)
	var md bytes.Buffer
	fmt.Fprintf(&md, "soak %s, accel %s, %d MiB guests, extra kernel args %q\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		accel, mem, os.Getenv("SOAK_KERNEL_ARGS"))
	fmt.Fprintln(&md, "| mode | creates | at a time | failures | boot restarts | ready median | p90 | max | wall | load at end |")
	fmt.Fprintln(&md, "|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range sums {
		fmt.Fprintf(&md, "| %s | %d | %d | %d | %d | %.2f s | %.2f s | %.2f s | %s | %s |\n",
			s.Mode, s.N, s.Par, s.Failures, s.Restarts, s.Median, s.P90, s.Max, s.Wall, s.LoadEnd)
	}
	for _, r := range all {
		if r.Err != "" {
			fmt.Fprintf(&md, "\n- %s: %s", r.Name, r.Err)
		}
	}
	fmt.Fprintf(&md, "\n\nserial logs of stalled boots: %s\n", filepath.Join(out, "stalled"))
	os.WriteFile(filepath.Join(out, "soak.md"), md.Bytes(), 0o644)
	os.Stdout.Write(md.Bytes())
	for _, s := range sums {
		if s.Failures > 0 {
			return 1
		}
	}
	return 0
}

// soakRun makes n creates, k at a time, each deleted once ready.
func soakRun(ctx context.Context, e *env, mode string, n, k int, mem string) []soakResult {
	res := make([]soakResult, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < k; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := fmt.Sprintf("soak-%s-%d", mode, i)
				t0 := time.Now()
				var rec struct {
					BootRestarts int `json:"boot_restarts"`
				}
				err := e.d.cliJSON(ctx, &rec, "vm", "create", "--name", name, "--image", e.image, "--memory", mem)
				r := soakResult{Mode: mode, Name: name, Seconds: time.Since(t0).Seconds(), Restarts: rec.BootRestarts}
				if err != nil {
					r.Err = firstLine(err.Error())
				}
				e.d.deleteVM(context.Background(), name)
				if ctx.Err() != nil {
					continue // interrupted: not a result
				}
				res[i] = r
				e.cfg.log.Info("soak", "name", name, "s", fmt.Sprintf("%.2f", r.Seconds), "restarts", r.Restarts, "err", r.Err)
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	done := res[:0]
	for _, r := range res {
		if r.Name != "" {
			done = append(done, r)
		}
	}
	return done
}

func summarizeSoak(mode string, k int, res []soakResult, wall time.Duration) soakSummary {
	s := soakSummary{Mode: mode, N: len(res), Par: k, Wall: wall.Round(time.Second).String()}
	var ok []float64
	for _, r := range res {
		s.Restarts += r.Restarts
		if r.Err != "" {
			s.Failures++
			continue
		}
		ok = append(ok, r.Seconds)
	}
	if len(ok) > 0 {
		s.Median, s.P90, s.Max = pct(ok, 50), pct(ok, 90), pct(ok, 100)
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(data))
		if len(f) >= 3 {
			s.LoadEnd = strings.Join(f[:3], " ")
		}
	}
	return s
}

// captureStalls follows every VM's serial log under vmsDir and keeps, in
// outDir, each boot's console (one file per VM and boot: the watchdog's
// restart starts a new log) that never showed banger's init line. Logs are
// small and polled every 200 ms.
func captureStalls(ctx context.Context, vmsDir, outDir string) {
	st := newStallScanner(vmsDir, outDir)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		st.scan()
		select {
		case <-ctx.Done():
			// Boots still running were cut short (the soak was
			// interrupted), not stalled: nothing to keep.
			return
		case <-tick.C:
		}
	}
}

// stallScanner is captureStalls' state between two looks at the logs.
type stallScanner struct {
	vmsDir, outDir string
	seen           map[string]*bootTrack
	records        map[string]string // stall records copied, by path: their size and time
}

// bootTrack is what was last seen of one VM's serial log.
type bootTrack struct {
	size   int64
	gen    int
	buf    []byte
	inited bool
}

func newStallScanner(vmsDir, outDir string) *stallScanner {
	return &stallScanner{vmsDir: vmsDir, outDir: outDir, seen: map[string]*bootTrack{}, records: map[string]string{}}
}

// flush keeps the boot's console when it never reached banger's init.
func (s *stallScanner) flush(id string, t *bootTrack) {
	if !t.inited && len(t.buf) > 0 {
		os.WriteFile(filepath.Join(s.outDir, fmt.Sprintf("%s.boot%d.log", id, t.gen)), t.buf, 0o644)
	}
}

// scan reads every serial log once: a log that shrank or changed its start
// is a new boot (the old one is flushed), a VM whose folder is gone is
// flushed and forgotten.
func (s *stallScanner) scan() {
	s.copyRecords()
	logs, _ := filepath.Glob(filepath.Join(s.vmsDir, "*", "serial.log"))
	live := map[string]bool{}
	for _, p := range logs {
		id := filepath.Base(filepath.Dir(p))
		live[id] = true
		t := s.seen[id]
		if t == nil {
			t = &bootTrack{}
			s.seen[id] = t
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if int64(len(data)) < t.size || (len(data) > 0 && len(t.buf) > 0 && !bytes.HasPrefix(data, t.buf[:min(len(t.buf), 64)])) {
			s.flush(id, t) // a restart began a new log
			t.gen++
			t.inited = false
		}
		t.size, t.buf = int64(len(data)), data
		if bytes.Contains(data, []byte(floorMarker)) {
			t.inited = true
		}
	}
	for id, t := range s.seen {
		if !live[id] {
			s.flush(id, t)
			delete(s.seen, id)
		}
	}
}

func newLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// copyRecords copies the daemon's stall records (the watchdog's reason, the
// vCPUs' state and the console's tail, written in the VM's folder before a
// restart) to outDir as ID.stall-N.log, again when one changed.
func (s *stallScanner) copyRecords() {
	recs, _ := filepath.Glob(filepath.Join(s.vmsDir, "*", paths.VMStallPrefix+"*.log"))
	for _, p := range recs {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		stamp := fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
		if s.records[p] == stamp {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s.records[p] = stamp
		id := filepath.Base(filepath.Dir(p))
		os.WriteFile(filepath.Join(s.outDir, id+"."+filepath.Base(p)), data, 0o644)
	}
}
