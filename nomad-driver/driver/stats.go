package driver

import (
	"context"
	"time"

	cstructs "github.com/hashicorp/nomad/client/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
)

// TaskStats reports the VMM process's memory (RSS) and CPU use every
// interval, as measured by the daemon.
func (d *Driver) TaskStats(ctx context.Context, taskID string, interval time.Duration) (<-chan *cstructs.TaskResourceUsage, error) {
	h, ok := d.tasks.get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	if interval < time.Second {
		interval = time.Second
	}
	ch := make(chan *cstructs.TaskResourceUsage)
	go func() {
		defer close(ch)
		var lastCPU float64
		var lastAt time.Time
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			qctx, cancel := context.WithTimeout(ctx, interval+10*time.Second)
			res, err := d.client().VMStats(qctx, h.vmID)
			cancel()
			if err == nil {
				now := time.Now()
				cpu := &cstructs.CpuStats{Measured: []string{"Percent"}}
				if !lastAt.IsZero() {
					cpu.Percent = cpuPercent(res.Stats.VMMCPUSeconds-lastCPU, now.Sub(lastAt))
				}
				lastCPU, lastAt = res.Stats.VMMCPUSeconds, now
				usage := &cstructs.TaskResourceUsage{
					ResourceUsage: &cstructs.ResourceUsage{
						MemoryStats: &cstructs.MemoryStats{RSS: uint64(max(res.Stats.VMMRSSBytes, 0)), Measured: []string{"RSS"}},
						CpuStats:    cpu,
					},
					Timestamp: now.UnixNano(),
				}
				select {
				case ch <- usage:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			case <-h.done:
				return
			case <-t.C:
			}
		}
	}()
	return ch, nil
}

// cpuPercent is CPU seconds used over a wall-clock span, in percent of one core.
func cpuPercent(used float64, span time.Duration) float64 {
	if span <= 0 || used < 0 {
		return 0
	}
	return used / span.Seconds() * 100
}
