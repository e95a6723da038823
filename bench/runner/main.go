// Command banger-bench measures banger against a baseline for each figure
// users compare (boot, create cost, image pull, workspace, API latency,
// memory, density), in one run on one machine, and prints a Markdown table
// plus JSON. It drives the real banger and bangerd binaries. Nothing here is
// a pass/fail test. See docs/performance.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the run's settings, from the environment (see usage).
type config struct {
	bin      string // folder holding banger, bangerd, banger-agent
	work     string // scratch folder (removed at the end unless keep)
	out      string // results folder
	runs     int    // runs per measurement (medians of these)
	only     map[string]bool
	bridge   string
	subnet   string
	accel    string // bangerd --accel
	memory   int    // guest MiB for the many-VM benchmarks
	b3MB     int
	b4Files  int
	b4MB     int
	b5VMs    int
	b5Calls  int
	b6VMs    int
	b7Count  int
	kernel   string // folder to import the kernel from instead of pulling
	image    string // prebuilt busybox rootfs (portable bundle)
	microvm  string // folder holding a built microvm-6.1 kernel, if any
	keep     bool
	debug    bool // bangerd --debug (the breakdown reads its debug log)
	portable bool // running from the portable bundle
	log      *slog.Logger
}

const usage = `banger-bench: benchmarks banger against its baselines (needs root).

Environment:
  BENCH_BIN          folder with banger, bangerd, banger-agent (default ./bin)
  BENCH_OUT          results folder (default ./bench/results)
  BENCH_WORK         scratch folder (default a temp folder)
  BENCH_ONLY         comma-separated subset, e.g. B1,B6 (default all)
  BENCH_RUNS         runs per measurement, medians of these (default 5)
  BENCH_BRIDGE       bridge of the benchmark daemon (default bgb0)
  BENCH_SUBNET       its subnet (default 10.251.0.0/24)
  BENCH_ACCEL        bangerd --accel: auto, kvm or tcg (default auto)
  BENCH_VM_MEMORY    guest MiB in B6/B7 (default 256)
  BENCH_B3_MB        size of the B3 image (default 300)
  BENCH_B4_FILES     files in the B4 repository (default 20000 on KVM, 2000 under TCG)
  BENCH_B4_MB        its size in MB (default 300 on KVM, 30 under TCG)
  BENCH_B5_VMS       VM records for B5 (default 200)
  BENCH_B5_CALLS     calls per B5 run (default 100)
  BENCH_B6_VMS       running VMs for B6 (default 10)
  BENCH_B7_COUNT     VMs per B7 run (default 10)
  BENCH_KERNEL_DIR   import the kernel from this folder instead of pulling it
  BENCH_IMAGE        busybox ext4 rootfs to use instead of building one
  BENCH_MICROVM_DIR  folder of a built microvm-6.1 kernel (B1 also runs with it)
  BENCH_KEEP=1       keep the scratch folder and daemon state
`

func main() {
	if len(os.Args) > 0 {
		if code, ok := multicall(os.Args); ok {
			os.Exit(code)
		}
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "-h", "--help", "help":
			fmt.Print(usage)
			return
		case "probe-kvm":
			os.Exit(probeKVMMain(os.Args[2:]))
		case "make-image":
			os.Exit(makeImageMain(os.Args[2:]))
		case "soak":
			os.Exit(soakMain(os.Args[2:]))
		case "breakdown":
			os.Exit(breakdownMain(os.Args[2:]))
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := loadConfig(log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "banger-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "banger-bench:", err)
		os.Exit(1)
	}
}

func loadConfig(log *slog.Logger) (*config, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("needs root (bangerd manages bridges, taps and nftables)")
	}
	cfg := &config{
		bin: envStr("BENCH_BIN", "bin"), out: envStr("BENCH_OUT", filepath.Join("bench", "results")),
		bridge: envStr("BENCH_BRIDGE", "bgb0"), subnet: envStr("BENCH_SUBNET", "10.251.0.0/24"),
		accel: envStr("BENCH_ACCEL", "auto"), kernel: os.Getenv("BENCH_KERNEL_DIR"),
		image: os.Getenv("BENCH_IMAGE"), microvm: os.Getenv("BENCH_MICROVM_DIR"),
		keep: os.Getenv("BENCH_KEEP") == "1", portable: os.Getenv("BENCH_PORTABLE") == "1", log: log,
	}
	var err error
	for _, v := range []struct {
		p    *int
		name string
		def  int
	}{{&cfg.runs, "BENCH_RUNS", 5}, {&cfg.memory, "BENCH_VM_MEMORY", 256}, {&cfg.b3MB, "BENCH_B3_MB", 300},
		{&cfg.b4Files, "BENCH_B4_FILES", 0}, {&cfg.b4MB, "BENCH_B4_MB", 0}, {&cfg.b5VMs, "BENCH_B5_VMS", 200},
		{&cfg.b5Calls, "BENCH_B5_CALLS", 100}, {&cfg.b6VMs, "BENCH_B6_VMS", 10}, {&cfg.b7Count, "BENCH_B7_COUNT", 10}} {
		if *v.p, err = envInt(v.name, v.def); err != nil {
			return nil, err
		}
	}
	if cfg.runs < 1 {
		return nil, fmt.Errorf("BENCH_RUNS must be at least 1")
	}
	if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		return nil, err
	}
	for _, b := range []string{"banger", "bangerd", "banger-agent"} {
		if _, err := os.Stat(filepath.Join(cfg.bin, b)); err != nil {
			return nil, fmt.Errorf("%s: %w (run 'make build' or set BENCH_BIN)", b, err)
		}
	}
	if cfg.out, err = filepath.Abs(cfg.out); err != nil {
		return nil, err
	}
	if only := os.Getenv("BENCH_ONLY"); only != "" {
		cfg.only = map[string]bool{}
		for _, id := range strings.Split(only, ",") {
			id = strings.ToUpper(strings.TrimSpace(id))
			if _, ok := benchmarks[id]; !ok {
				return nil, fmt.Errorf("BENCH_ONLY: unknown benchmark %q (B1..B8)", id)
			}
			cfg.only[id] = true
		}
	}
	cfg.work = os.Getenv("BENCH_WORK")
	if cfg.work == "" {
		cfg.work, err = os.MkdirTemp("", "banger-bench-")
	} else {
		err = os.MkdirAll(cfg.work, 0o755)
	}
	return cfg, err
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a non-negative number", name, v)
	}
	return n, nil
}

// bench is one benchmark: it adds rows to the report.
type bench func(ctx context.Context, e *env) ([]Row, error)

// benchmarks by id; order is the run order (B6 first: it measures an idle daemon).
var benchmarks = map[string]bench{"B1": benchBoot, "B2": benchCreateCost, "B3": benchPull,
	"B4": benchWorkspace, "B5": benchList, "B6": benchMemory, "B7": benchDensity, "B8": benchFork}

var runOrder = []string{"B6", "B1", "B2", "B7", "B4", "B3", "B5", "B8"}

// env is what benchmarks share: the config, the daemon, the fixtures.
type env struct {
	cfg    *config
	d      *daemon
	image  string // name of the registered busybox image
	rootfs string // its ext4 file
	report *Report
}

func run(ctx context.Context, cfg *config) error {
	start := time.Now()
	defer func() {
		if !cfg.keep {
			os.RemoveAll(cfg.work)
		}
	}()
	rep := newReport(cfg)
	d, err := startDaemon(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.close()
	e := &env{cfg: cfg, d: d, report: rep}
	if err := e.setup(ctx); err != nil {
		return err
	}
	rep.Host.Accel = e.accel()
	scaleDefaults(cfg, strings.Contains(rep.Host.Accel, "tcg"))
	rep.Settings["b4_files"], rep.Settings["b4_mb"] = cfg.b4Files, cfg.b4MB
	cfg.log.Info("benchmark daemon ready", "accel", rep.Host.Accel, "runs", cfg.runs, "work", cfg.work)
	for _, id := range runOrder {
		if cfg.only != nil && !cfg.only[id] {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t0 := time.Now()
		cfg.log.Info("running", "benchmark", id)
		rows, err := benchmarks[id](ctx, e)
		if err != nil {
			cfg.log.Error("benchmark failed", "benchmark", id, "err", err)
			rows = append(rows, Row{ID: id, Name: benchNames[id], Note: "failed: " + strings.SplitN(err.Error(), "\n", 2)[0]})
		}
		rep.add(rows...)
		rep.Durations[id] = time.Since(t0).Round(time.Second).String()
		// Leave nothing running between benchmarks.
		d.cli(context.Background(), "vm", "delete", "--all", "--force")
	}
	rep.Total = time.Since(start).Round(time.Second).String()
	rep.Host.GoArch = runtime.GOARCH
	return rep.write(os.Stdout)
}

// scaleDefaults sizes the B4 repository: the 20,000 files / 300 MB
// on KVM, a tenth of it under TCG, where the guest side of either copy runs
// about 0.5 MB/s and the full size would take over an hour.
func scaleDefaults(cfg *config, tcg bool) {
	files, mb := 20000, 300
	if tcg {
		files, mb = 2000, 30
	}
	if cfg.b4Files == 0 {
		cfg.b4Files = files
	}
	if cfg.b4MB == 0 {
		cfg.b4MB = mb
	}
}

var benchNames = map[string]string{"B1": "boot", "B2": "create cost", "B3": "image pull", "B4": "workspace",
	"B5": "API latency", "B6": "memory", "B7": "density", "B8": "fork and resume"}
