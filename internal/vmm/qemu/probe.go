package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"banger/internal/initramfs"
)

// Probe constants shared with the guest agent (initsys.ProbeEnv and
// initsys.ProbeMarker; a test keeps them equal).
const (
	probeEnv    = "BANGER_ACCEL_PROBE"
	probeMarker = "banger-accel-probe: booted"
)

// DefaultProbeTimeout bounds one accelerator probe.
const DefaultProbeTimeout = 15 * time.Second

// ProbeSpec is one KVM probe: the QEMU binary, a stored kernel and the guest
// agent binary (the probe's /init).
type ProbeSpec struct {
	Binary, Kernel, Agent string
	// Timeout bounds the whole probe; DefaultProbeTimeout when zero.
	Timeout time.Duration
	// tcgCmdline, set by tests only, boots the probe under TCG with these
	// extra kernel parameters (proving the probe sees a guest that boots).
	tcgCmdline string
}

// ProbeKVM boots a tiny guest under KVM (microvm, the kernel, an initrd
// holding only the agent in probe mode) and returns nil when the guest
// printed the probe marker within the timeout, else an error saying why
// (the last console line the kernel printed, when any). QEMU runs directly
// as the caller, unconfined: it boots only banger's own initrd and a kernel
// from banger's own store. It is killed when the probe ends, and its temp
// dir removed.
func ProbeKVM(ctx context.Context, s ProbeSpec) error {
	if s.Timeout <= 0 {
		s.Timeout = DefaultProbeTimeout
	}
	dir, err := os.MkdirTemp("", "banger-accel-probe-")
	if err != nil {
		return fmt.Errorf("kvm probe: %w", err)
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "initrd.cpio")
	f, err := os.OpenFile(initrd, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("kvm probe: %w", err)
	}
	err = initramfs.AgentArchive(f, s.Agent)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("kvm probe: initrd: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Binary, probeArgs(s, initrd)...)
	cmd.Dir = dir
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("kvm probe: %w", err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{b: &stderr, max: 4 << 10}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kvm probe: start qemu: %w", err)
	}
	found, last := watchProbeConsole(out)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel() // the guest showed what it could: end QEMU now
	waitErr := cmd.Wait()
	switch {
	case found:
		return nil
	case timedOut:
		return fmt.Errorf("a test guest under KVM did not boot within %s (its console stopped at %q)", s.Timeout, last)
	case waitErr != nil:
		return fmt.Errorf("qemu with kvm failed (%v): %s", waitErr, probeStderr(stderr.String()))
	}
	return errors.New("a test guest under KVM exited without booting")
}

// probeStderr is what a failed probe's reason quotes of QEMU's stderr: its
// first line (the error; what follows, such as an assertion, repeats it),
// without the program's name, at most 200 bytes.
func probeStderr(stderr string) string {
	line := ""
	for _, l := range strings.Split(stderr, "\n") {
		if line = strings.TrimSpace(l); line != "" {
			break
		}
	}
	if i := strings.Index(line, ": "); i > 0 && strings.HasPrefix(line, "qemu-system-") {
		line = line[i+2:]
	}
	if len(line) > 200 {
		line = strings.ToValidUTF8(line[:200], "") + "…"
	}
	return line
}

func probeArgs(s ProbeSpec, initrd string) []string {
	accel, cmdline := []string{"-accel", "kvm", "-cpu", "host"}, ""
	if s.tcgCmdline != "" {
		accel, cmdline = []string{"-accel", "tcg", "-cpu", "max"}, " "+s.tcgCmdline
	}
	return append(append([]string{"-M", Machine}, accel...),
		"-smp", "1", "-m", "128",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio", "-kernel", s.Kernel, "-initrd", initrd,
		"-append", "console=ttyS0 reboot=t panic=-1 loglevel=4 "+probeEnv+"=1"+cmdline)
}

// watchProbeConsole reads the probe's console until the marker or EOF (QEMU
// exited or was killed); it returns whether the marker appeared and the last
// non-empty line seen (bounded).
func watchProbeConsole(r io.Reader) (found bool, last string) {
	var line []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c == '\n' {
				if l := strings.TrimSpace(string(line)); l != "" {
					if strings.Contains(l, probeMarker) {
						return true, l
					}
					last = l
				}
				line = line[:0]
				continue
			}
			if len(line) < 512 && c >= 0x20 && c != 0x7f {
				line = append(line, c)
			}
		}
		if err != nil {
			if strings.Contains(string(line), probeMarker) {
				return true, string(line)
			}
			return false, last
		}
	}
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
