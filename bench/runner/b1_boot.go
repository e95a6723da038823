package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// floorMarker is the first line banger's init prints: the kernel has booted
// and started init. Bare QEMU booting the same kernel, initrd and root disk
// to this line is the floor for `vm create` to ready.
const floorMarker = "banger-init:"

// benchBoot is B1: `vm create` to ready against bare QEMU to init, with the
// Debian cloud kernel and, when built, the microvm-6.1 kernel.
func benchBoot(ctx context.Context, e *env) ([]Row, error) {
	row, err := bootRow(ctx, e, e.image, "debian-12-cloud")
	if err != nil {
		// The other kernel's row is still worth running.
		row = failedRow("B1", "vm create to ready, debian-12-cloud kernel", err)
	}
	rows := []Row{row}
	dir := microvmDir(e.cfg)
	if dir == "" {
		rows = append(rows, Row{ID: "B1", Name: "vm create to ready, microvm-6.1 kernel",
			Note: "not built (build it with 'banger kernel pull microvm-6.1', ~30 min, then set BENCH_MICROVM_DIR)"})
		return rows, nil
	}
	image, err := microvmImage(ctx, e, dir)
	if err != nil {
		return rows, err
	}
	row, err = bootRow(ctx, e, image, "microvm-6.1")
	if err != nil {
		row = failedRow("B1", "vm create to ready, microvm-6.1 kernel", err)
	}
	return append(rows, row), nil
}

// microvmImage imports the microvm-6.1 kernel built in dir and registers
// the benchmark's root filesystem with it.
func microvmImage(ctx context.Context, e *env, dir string) (string, error) {
	if _, err := e.d.cli(ctx, "kernel", "import", "microvm-6.1", "--from-dir", dir); err != nil {
		return "", fmt.Errorf("import microvm-6.1 from %s: %w", dir, err)
	}
	if _, err := e.d.cli(ctx, "image", "register", "--name", "bb-microvm", "--rootfs", e.rootfs, "--kernel-ref", "microvm-6.1"); err != nil {
		return "", err
	}
	return "bb-microvm", nil
}

// microvmDir finds an already built microvm-6.1 kernel: BENCH_MICROVM_DIR,
// else the default daemon's kernel store.
func microvmDir(cfg *config) string {
	for _, d := range []string{cfg.microvm, "/var/lib/banger/kernels/microvm-6.1"} {
		if d == "" {
			continue
		}
		for _, k := range []string{"vmlinux", "vmlinuz", "bzImage"} {
			if _, err := os.Stat(filepath.Join(d, k)); err == nil {
				return d
			}
		}
	}
	return ""
}

func bootRow(ctx context.Context, e *env, image, kernel string) (Row, error) {
	// Warm-up (not counted): composes and caches the initrd, fills the page
	// cache, and gives the QEMU argv the floor reuses.
	v, err := e.d.createVM(ctx, "b1-warm", image)
	if err != nil {
		return Row{}, err
	}
	argv, err := procArgv(v.PID)
	e.d.deleteVM(ctx, v.Name)
	if err != nil {
		return Row{}, fmt.Errorf("read qemu argv: %w", err)
	}
	floor := bareArgv(argv, "", true)
	bootFloor := func() (float64, error) {
		bv, d, err := startBare(ctx, floor, floorMarker, 3*time.Minute)
		bv.stop()
		return d.Seconds(), err
	}
	bootBanger := func(i int) (float64, error) {
		name := fmt.Sprintf("b1-%d", i)
		t0 := time.Now()
		_, err := e.d.createVM(ctx, name, image)
		d := time.Since(t0).Seconds()
		e.d.deleteVM(ctx, name)
		return d, err
	}
	if _, err := bootFloor(); err != nil {
		return Row{}, err
	}
	var banger, base []float64
	var fails runFailures
	for i := 0; i < e.cfg.runs; i++ {
		var b, f float64
		var errB, errF error
		if i%2 == 0 {
			b, errB = bootBanger(i)
			f, errF = bootFloor()
		} else {
			f, errF = bootFloor()
			b, errB = bootBanger(i)
		}
		// A failed run is reported, and its pair left out of the ratios.
		fails.add(errB)
		fails.add(errF)
		if errB != nil || errF != nil {
			e.cfg.log.Warn("B1 run failed", "kernel", kernel, "run", i, "create_err", errB, "floor_err", errF)
			continue
		}
		banger, base = append(banger, b), append(base, f)
		e.cfg.log.Info("B1", "kernel", kernel, "run", i, "create_s", b, "floor_s", f)
	}
	if len(banger) == 0 {
		return Row{}, fmt.Errorf("every run failed: %w", fails.first)
	}
	r := pairRow("B1", "vm create to ready, "+kernel+" kernel", "s", banger, "bare QEMU, same kernel+initrd+root disk, to init's first line", base)
	r.Goal = "ratio ≤ 1.10 (TCG); < 0.15 s on KVM"
	r.Note = joinNotes("banger: CLI wall time, create to agent answering (1024 MiB, 2 vCPUs)", fails.note(e.cfg.runs), noisyBaseline(r))
	return r, nil
}
