package qemu

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

// maxMonitorOutput bounds one monitor command's output kept by CPUState.
const maxMonitorOutput = 64 << 10

// regsRe finds each vCPU's instruction and stack pointers in "info
// registers -a" (x86-64: "RIP=ffffffff81000000 ... RSP=...").
var (
	ripRe = regexp.MustCompile(`RIP=([0-9a-f]{16})`)
	rspRe = regexp.MustCompile(`RSP=([0-9a-f]{16})`)
)

// CPUState describes the guest's vCPUs of runDir as QEMU's monitor prints
// them: every vCPU's registers and local APIC, then the instructions at
// each one's instruction pointer and the top of its stack (read through
// the first vCPU's page tables, which map the kernel the same way). Where
// the vCPUs are, and what their timers and pending interrupts are, is what
// tells a hung guest kernel from a starved one.
func (b *Backend) CPUState(ctx context.Context, runDir string) (string, error) {
	if _, err := lookup(runDir); err != nil {
		return "", fmt.Errorf("cpu state: %w", err)
	}
	var out strings.Builder
	err := withQMP(ctx, runDir, func(ctx context.Context, c *QMP) error {
		var cpus []struct {
			Index int `json:"cpu-index"`
		}
		if err := c.Execute(ctx, "query-cpus-fast", nil, &cpus); err != nil {
			return err
		}
		regs, err := c.monitor(ctx, &out, "info registers -a")
		if err != nil {
			return err
		}
		for _, cpu := range cpus {
			if _, err := c.monitor(ctx, &out, fmt.Sprintf("info lapic %d", cpu.Index)); err != nil {
				return err
			}
		}
		rips, rsps := ripRe.FindAllStringSubmatch(regs, -1), rspRe.FindAllStringSubmatch(regs, -1)
		for i := range min(len(rips), len(rsps), len(cpus)) {
			fmt.Fprintf(&out, "== vCPU %d ==\n", cpus[i].Index)
			if _, err := c.monitor(ctx, &out, "x/12i 0x"+rips[i][1]); err != nil {
				return err
			}
			if _, err := c.monitor(ctx, &out, "x/32gx 0x"+rsps[i][1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return out.String(), fmt.Errorf("cpu state: %w", err)
	}
	return out.String(), nil
}

// monitor runs one human monitor command, appends "(qemu) cmd" and its
// output (bounded) to out, and returns the output.
func (c *QMP) monitor(ctx context.Context, out *strings.Builder, cmd string) (string, error) {
	var s string
	if err := c.Execute(ctx, "human-monitor-command", map[string]string{"command-line": cmd}, &s); err != nil {
		return "", err
	}
	if len(s) > maxMonitorOutput {
		s = s[:maxMonitorOutput] + "\n(cut)\n"
	}
	fmt.Fprintf(out, "(qemu) %s\n%s\n", cmd, strings.TrimRight(s, "\n"))
	return s, nil
}
