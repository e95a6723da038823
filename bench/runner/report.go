package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is one run's results, as written to bench/results/*.json.
type Report struct {
	StartedAt time.Time         `json:"started_at"`
	Host      Host              `json:"host"`
	Settings  map[string]any    `json:"settings"`
	Rows      []Row             `json:"rows"`
	Durations map[string]string `json:"durations"`
	Total     string            `json:"total"`
	cfg       *config
}

// Host describes the machine the run was on.
type Host struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemMiB   int64  `json:"mem_mib"`
	Kernel   string `json:"kernel"`
	Accel    string `json:"accel"`
	QEMU     string `json:"qemu"`
	Banger   string `json:"banger"`
	GoArch   string `json:"goarch"`
	Portable bool   `json:"portable"`
}

func newReport(cfg *config) *Report {
	r := &Report{StartedAt: time.Now().UTC(), cfg: cfg, Durations: map[string]string{}}
	r.Host.CPUs = runtime.NumCPU()
	r.Host.Portable = cfg.portable
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				r.Host.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(data), "\n", 2)[0], "MemTotal:"), "%d", &kb)
		r.Host.MemMiB = kb >> 10
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		r.Host.Kernel = strings.TrimSpace(string(data))
	}
	if out, err := exec.Command("qemu-system-x86_64", "--version").Output(); err == nil {
		r.Host.QEMU = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	}
	if out, err := exec.Command(filepath.Join(cfg.bin, "bangerd"), "--version").Output(); err == nil {
		r.Host.Banger = strings.TrimSpace(string(out))
	}
	r.Settings = map[string]any{"runs": cfg.runs, "vm_memory_mib": cfg.memory, "b3_mb": cfg.b3MB,
		"b4_files": cfg.b4Files, "b4_mb": cfg.b4MB, "b5_vms": cfg.b5VMs, "b5_calls": cfg.b5Calls,
		"b6_vms": cfg.b6VMs, "b7_count": cfg.b7Count}
	return r
}

func (r *Report) add(rows ...Row) { r.Rows = append(r.Rows, rows...) }

// Markdown renders the results table.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s on %d CPUs (%s), %d MiB, Linux %s, %s, accelerator: **%s**. %d runs per figure unless noted; median (min–max); ratio = banger ÷ baseline, pair by pair.\n\n",
		r.StartedAt.Format("2006-01-02 15:04 UTC"), r.Host.CPUs, r.Host.CPUModel, r.Host.MemMiB, r.Host.Kernel, r.Host.QEMU, r.Host.Accel, r.cfg.runs)
	b.WriteString("| # | measure | banger | baseline | baseline figure | ratio | goal | note |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	rows := slices.Clone(r.Rows)
	slices.SortStableFunc(rows, func(a, b Row) int { return strings.Compare(a.ID, b.ID) })
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", row.ID, esc(row.Name), fmtStat(row.Banger, row.Unit),
			esc(dashIf(row.Baseline)), fmtStat(row.Base, row.Unit), fmtRatio(row.Ratio), esc(dashIf(row.Goal)), esc(row.Note))
	}
	fmt.Fprintf(&b, "\nTotal time %s.\n", r.Total)
	return b.String()
}

func dashIf(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func esc(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// write prints the table and saves JSON (timestamped and latest.json) and
// latest.md under the results folder.
func (r *Report) write(w io.Writer) error {
	md := r.Markdown()
	fmt.Fprintln(w)
	fmt.Fprint(w, md)
	if err := os.MkdirAll(r.cfg.out, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	stamp := filepath.Join(r.cfg.out, "bench-"+r.StartedAt.Format("20060102-150405")+".json")
	for _, f := range []struct {
		path string
		data []byte
	}{{stamp, data}, {filepath.Join(r.cfg.out, "latest.json"), data}, {filepath.Join(r.cfg.out, "latest.md"), []byte(md)}} {
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nresults: %s\n", stamp)
	return nil
}
