// Package initsys is banger's guest init: stage 1 runs as /init in the
// initramfs and switches into the VM's root; stage 2 runs as PID 1 in that
// root, sets up the system and serves SSH through the agent.
package initsys

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// LinePrefix starts every console line written by banger's init.
const LinePrefix = "banger-init: "

// OpenConsole returns a writer for the kernel console, or stderr when
// /dev/console cannot be opened.
func OpenConsole() io.Writer {
	f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return os.Stderr
	}
	return f
}

// NewConsoleLogger returns a logger writing one plain line per record:
// "banger-init: [WARNING: |ERROR: ]message key=value ...".
func NewConsoleLogger(w io.Writer) *slog.Logger {
	return slog.New(&consoleHandler{mu: &sync.Mutex{}, w: w})
}

// Fatal prints err as a FATAL console line.
func Fatal(w io.Writer, err error) {
	fmt.Fprintf(w, "%sFATAL: %v\n", LinePrefix, err)
}

// FatalReboot prints err, waits so the line reaches the serial log, then
// restarts the machine (the VMMs banger uses exit on a guest restart).
func FatalReboot(w io.Writer, err error) {
	Fatal(w, err)
	unix.Sync()
	time.Sleep(2 * time.Second)
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	// Not PID 1 or not allowed: nothing better to do than exit.
	os.Exit(1)
}

type consoleHandler struct {
	mu     *sync.Mutex
	w      io.Writer
	attrs  string // preformatted " key=value" pairs
	prefix string // group prefix for keys
}

func (h *consoleHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo
}

func (h *consoleHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(LinePrefix)
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("ERROR: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("WARNING: ")
	}
	b.WriteString(r.Message)
	// Time since boot, to see where a slow boot spends it.
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) == nil {
		fmt.Fprintf(&b, " uptime=%.3fs", float64(ts.Nano())/1e9)
	}
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.prefix, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *consoleHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		writeAttr(&b, h.prefix, a)
	}
	c := *h
	c.attrs = b.String()
	return &c
}

func (h *consoleHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

func writeAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			writeAttr(b, prefix+a.Key+".", g)
		}
		return
	}
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \t\n\"=") {
		v = strconv.Quote(v)
	}
	b.WriteString(" " + prefix + a.Key + "=" + v)
}
