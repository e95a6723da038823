package main

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// benchCreateCost is B2: creating a VM (without booting it) from a 4 GiB
// image against from a 256 MiB image: wall time and bytes written.
func benchCreateCost(ctx context.Context, e *env) ([]Row, error) {
	sizes := []struct{ name, size string }{{"b2-big", "4G"}, {"b2-small", "256M"}}
	for _, s := range sizes {
		img, err := busyboxRootfs(ctx, filepath.Join(e.cfg.work, s.name), s.size)
		if err != nil {
			return nil, err
		}
		if _, err := e.d.cli(ctx, "image", "register", "--name", s.name, "--rootfs", img, "--kernel-ref", "debian-12-cloud"); err != nil {
			return nil, err
		}
	}
	create := func(i int, image string) (secs, allocMiB, writtenMiB float64, err error) {
		name := fmt.Sprintf("b2-%d-%s", i, image[3:])
		w0, _ := writeBytes(e.d.pid())
		t0 := time.Now()
		var v vm
		if err = e.d.cliJSON(ctx, &v, "vm", "create", "--no-start", "--name", name, "--image", image); err != nil {
			return
		}
		secs = time.Since(t0).Seconds()
		syscall.Sync()
		w1, _ := writeBytes(e.d.pid())
		allocMiB = float64(allocated(v.Dir)) / (1 << 20)
		writtenMiB = float64(w1-w0) / (1 << 20)
		err = e.d.deleteVM(ctx, name)
		return
	}
	var tBig, tSmall, aBig, aSmall, wBig, wSmall []float64
	for i := 0; i < e.cfg.runs; i++ {
		order := []string{"b2-big", "b2-small"}
		if i%2 == 1 {
			order = []string{"b2-small", "b2-big"}
		}
		for _, img := range order {
			s, a, w, err := create(i, img)
			if err != nil {
				return nil, err
			}
			if img == "b2-big" {
				tBig, aBig, wBig = append(tBig, s), append(aBig, a), append(wBig, w)
			} else {
				tSmall, aSmall, wSmall = append(tSmall, s), append(aSmall, a), append(wSmall, w)
			}
		}
	}
	r1 := pairRow("B2", "vm create --no-start from a 4 GiB image: wall time", "s", tBig, "same from a 256 MiB image", tSmall)
	r1.Goal = "ratio ≈ 1"
	r1.Note = "validate + disks (overlay and work disk, 8 GiB each, sparse)"
	r2 := pairRow("B2", "bytes on disk for the new VM (4 GiB image)", "MiB", aBig, "same, 256 MiB image", aSmall)
	r2.Goal = "< 10 MiB, ratio ≈ 1"
	r2.Note = "allocated blocks of the VM folder after sync"
	r3 := pairRow("B2", "bytes written by bangerd itself (4 GiB image)", "MiB", wBig, "same, 256 MiB image", wSmall)
	r3.Note = "/proc/<bangerd>/io write_bytes delta (mkfs.ext4 runs as a child and is not counted here)"
	return []Row{r1, r2, r3}, nil
}

// allocated sums the allocated bytes of every file under dir.
func allocated(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) == nil {
			total += st.Blocks * 512
		}
		return nil
	})
	return total
}
