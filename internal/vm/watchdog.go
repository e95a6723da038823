package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// initMarker starts every console line of banger's init (initsys.LinePrefix).
// Stage 1 prints one as soon as it runs, whatever the image's init mode, so
// its appearance means the kernel booted as far as running /init.
const initMarker = "banger-init: "

// maxStallScale caps how far host load stretches the stall deadline (below
// the 180 s ready timeout at the default 45 s, so a restart can still help).
const maxStallScale = 3

// errBootStalled is a guest that did not reach banger's init in time.
var errBootStalled = errors.New("the guest did not reach banger's init")

// fatalLines are kernel console lines after which a boot never reaches init,
// so the watchdog restarts the VMM at once instead of at its deadline.
//
// "APIC frequency too slow": under TCG on a loaded host, the guest kernel's
// local APIC timer calibration (a loop paced by the TSC) can be starved: a
// vCPU thread descheduled for 100 ms or more just after the loop starts makes
// every remaining round pass at once, the measured frequency comes out near
// zero and the kernel disables the timer. On microvm (hardware-reduced ACPI:
// no PIT or HPET tick) that leaves the guest with no timer interrupt at all,
// and it stops at its first wait on jiffies (bringing up the second vCPU, or
// the first sleep). The line is printed at KERN_WARNING, hence loglevel=5 in
// baseCmdline. See docs/performance.md, "Boot reliability".
var fatalLines = []string{"APIC frequency too slow, disabling apic timer"}

// stallError says how a boot stalled: an empty console, the last line the
// kernel printed before going silent, or a line it never recovers from.
type stallError struct {
	after    time.Duration
	lastLine string
	fatal    string
}

func (e *stallError) Error() string {
	if e.fatal != "" {
		return fmt.Sprintf("the guest's kernel printed %q after %s and would never reach banger's init", e.fatal, e.after.Round(time.Millisecond))
	}
	if e.lastLine == "" {
		return fmt.Sprintf("the guest printed nothing on its serial console in %s", e.after.Round(time.Second))
	}
	return fmt.Sprintf("the guest did not reach banger's init in %s; its console stopped at %q", e.after.Round(time.Second), e.lastLine)
}

func (e *stallError) Unwrap() error { return errBootStalled }

// stallDeadline is StallTimeout scaled by the host's load (1-minute load
// average per CPU, at least 1, at most maxStallScale): a loaded host boots
// guests slower, an idle one should not wait long on a hung guest.
func (m *Manager) stallDeadline() time.Duration {
	scale := 1.0
	if m.loadPerCPU != nil {
		scale = max(1, min(maxStallScale, m.loadPerCPU()))
	}
	return time.Duration(float64(m.cfg.StallTimeout) * scale)
}

// hostLoadPerCPU is the 1-minute load average divided by the CPU count,
// 1 when /proc/loadavg cannot be read.
func hostLoadPerCPU() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 1
	}
	l, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 1
	}
	return l / float64(runtime.NumCPU())
}

// consoleProgress follows a serial log from its start: whether banger's init
// has printed, and the time and last line of the latest output.
type consoleProgress struct {
	path     string
	off      int64
	carry    []byte // the unfinished last line
	lastLine string
	initSeen bool
	fatal    string // the first of fatalLines seen before banger's init
	lastOut  time.Time
}

// poll reads what the console gained since the last poll. A log smaller than
// what was read was rotated: reading restarts at its beginning.
func (p *consoleProgress) poll(now time.Time) {
	f, err := os.Open(p.path)
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	if fi.Size() < p.off {
		p.off, p.carry = 0, nil
	}
	if fi.Size() == p.off {
		return
	}
	// Bounded: a chatty kernel may write a lot between polls; only the
	// latest 64 KiB matter for the last line and the marker.
	if fi.Size()-p.off > 64<<10 {
		p.off, p.carry = fi.Size()-64<<10, nil
	}
	data, err := io.ReadAll(io.NewSectionReader(f, p.off, fi.Size()-p.off))
	if err != nil || len(data) == 0 {
		return
	}
	p.off += int64(len(data))
	p.lastOut = now
	buf := append(p.carry, data...)
	// A fatal line counts when it comes before banger's init line (with
	// maxcpus=1 a kernel without a tick can still reach init).
	initAt := bytes.Index(buf, []byte(initMarker))
	for _, l := range fatalLines {
		if i := bytes.Index(buf, []byte(l)); !p.initSeen && p.fatal == "" && i >= 0 && (initAt < 0 || i < initAt) {
			p.fatal = l
		}
	}
	if initAt >= 0 {
		p.initSeen = true
	}
	lines := strings.Split(string(buf), "\n")
	p.carry = []byte(lines[len(lines)-1])
	if len(p.carry) > 4<<10 {
		p.carry = p.carry[len(p.carry)-4<<10:]
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			p.lastLine = printable(l)
			break
		}
	}
}

// printable bounds a guest's console line for an error message.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// watchConsole returns nil once banger's init prints on the console, or a
// *stallError when the guest printed one of fatalLines first, has not
// reached init by the stall deadline after start, or went silent for that
// long before reaching it. The deadline is
// re-read at each poll so a load rising mid-boot extends it. It returns
// ctx.Err() when ctx ends first.
func (m *Manager) watchConsole(ctx context.Context, log string) error {
	start := time.Now()
	p := &consoleProgress{path: log, lastOut: start}
	for {
		now := time.Now()
		p.poll(now)
		if p.fatal != "" {
			return &stallError{after: now.Sub(start), lastLine: p.lastLine, fatal: p.fatal}
		}
		if p.initSeen {
			return nil
		}
		d := m.stallDeadline()
		if now.Sub(start) >= d {
			return &stallError{after: now.Sub(start), lastLine: p.lastLine}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(m.pollEvery()):
		}
	}
}

func (m *Manager) pollEvery() time.Duration {
	return min(250*time.Millisecond, m.cfg.StallTimeout/4)
}
