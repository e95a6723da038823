package qemu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
)

const (
	// cleanupTimeout bounds the cleanup after a failed start.
	cleanupTimeout = 10 * time.Second
	// setupTimeout bounds QEMU's setup, from exec to answering on QMP.
	setupTimeout = 60 * time.Second
)

// Start launches QEMU for spec in its own session, paused (-S). Once QEMU
// answers on QMP it has opened every file it needs, chrooted and dropped to
// the vmm user (when confined); Start then attaches the serial console
// reader and lets the guest run (QMP cont), so no console output is lost.
// QEMU's startup errors go to RunDir/vmm.log and are quoted in the error.
// On any failure nothing is left running and the pidfile and sockets are gone.
func (b *Backend) Start(ctx context.Context, spec vmm.Spec) (vmm.Process, error) {
	if err := vmm.CheckSpec(spec, caps); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	l, err := b.prepareLaunch(&spec)
	if err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	defer l.close()
	runDir := l.runDir
	ok := false
	defer func() {
		if !ok {
			b.cleanupStart(runDir)
		}
	}()
	memPath, err := b.createMemFile(filepath.Base(filepath.Dir(runDir)), spec.MemoryMiB)
	if err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	pid, err := b.launch(ctx, b.command(spec).WithMemFile(memPath, true).Build(), runDir, l.extra, l.clone)
	// QEMU has mapped it (or failed): the memory lives as long as QEMU.
	os.Remove(memPath)
	if err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	if err := b.launched(l, pid); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	if err := withQMP(ctx, runDir, func(ctx context.Context, c *QMP) error { return c.Execute(ctx, "cont", nil, nil) }); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: qemu (pid %d): %w", pid, err)
	}
	ok = true
	return vmm.Process{PID: pid, Backend: b.Name()}, nil
}

// launchPlan is what Start and Restore share before QEMU runs: the run
// folder made ready, the clone flags of its namespaces and the descriptors
// it inherits (the tap, when it gets its own network namespace).
type launchPlan struct {
	runDir string
	extra  []*os.File
	clone  uintptr
}

func (l launchPlan) close() {
	for _, f := range l.extra {
		f.Close()
	}
}

// prepareLaunch checks spec against the caps, readies its run folder and
// opens its tap; spec.RunDir is cleaned. On error nothing is left open
// and a half-readied run folder is cleaned up.
func (b *Backend) prepareLaunch(spec *vmm.Spec) (launchPlan, error) {
	if err := vmm.CheckSpec(*spec, caps); err != nil {
		return launchPlan{}, err
	}
	runDir := filepath.Clean(spec.RunDir)
	spec.RunDir = runDir
	if err := vmmproc.PrepareRunDir(runDir, PIDFile, match(runDir), runtimeFiles()...); err != nil {
		return launchPlan{}, err
	}
	// A reader left from the previous run of this VM finishes first.
	b.consoleDrained(runDir, consoleDrainWait)
	if err := b.prepareRunDir(*spec); err != nil {
		return launchPlan{}, err
	}
	l := launchPlan{runDir: runDir}
	if b.runAs != nil {
		// Its own PID namespace: an escape sees and signals no other
		// process (another VM's QEMU runs as the same user).
		l.clone = unix.CLONE_NEWIPC | unix.CLONE_NEWPID
	}
	if b.ownNetns(*spec) {
		tap, err := openTap(spec.Net.Tap)
		if err != nil {
			b.cleanupStart(runDir)
			return launchPlan{}, err
		}
		l.extra, l.clone = []*os.File{tap}, l.clone|unix.CLONE_NEWNET
	}
	return l, nil
}

// launched checks that QEMU (pid on the host) is the one the pidfile names
// and attaches the daemon's console reader.
func (b *Backend) launched(l launchPlan, pid int) error {
	pidFile := filepath.Join(l.runDir, PIDFile)
	if l.clone&unix.CLONE_NEWPID != 0 {
		// QEMU wrote its pid in its own namespace (1); the daemon needs the
		// host's. The new file also leaves QEMU's descriptor on the old one.
		if err := writePIDFile(pidFile, pid); err != nil {
			return err
		}
	}
	if filePID, err := vmmproc.ReadPIDFile(pidFile); err != nil || filePID != pid {
		return fmt.Errorf("qemu (pid %d) left no pidfile naming it: %d, %v", pid, filePID, err)
	}
	return b.attachConsole(l.runDir, true)
}

// writePIDFile replaces path with pid, root's alone (0600).
func writePIDFile(path string, pid int) error {
	if err := vmmproc.WritePIDFile(path, pid); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

// prepareRunDir makes runDir root's alone (0700; QEMU opens what it needs
// in it before it drops privileges) and records the serial log's path. A
// confined QEMU on user-mode networking reads /etc/resolv.conf inside its
// chroot when the guest asks DNS: it gets a copy, and runDir becomes 0711
// so that the vmm user can reach it (every other file there stays 0600 or
// is a socket only root may connect to).
func (b *Backend) prepareRunDir(spec vmm.Spec) error {
	mode := os.FileMode(0o700)
	if spec.SerialLog != "" {
		if err := writeSerialTarget(spec.RunDir, spec.SerialLog); err != nil {
			return err
		}
	} else if err := os.Remove(filepath.Join(spec.RunDir, SerialTarget)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if b.runAs != nil && spec.Net != nil && spec.Net.Tap == "" {
		if err := copyResolvConf(spec.RunDir); err != nil {
			return err
		}
		mode = 0o711
	}
	return os.Chmod(spec.RunDir, mode)
}

// copyResolvConf puts the host's resolver configuration at etc/resolv.conf
// under runDir (world-readable, root-owned).
func copyResolvConf(runDir string) error {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return fmt.Errorf("resolver config for user-mode networking: %w", err)
	}
	etc := filepath.Join(runDir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(etc, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(etc, "resolv.conf"), data, 0o644)
}

// launch runs argv (a paused QEMU) in its own session (and the namespaces
// of clone), with extra as descriptors 3 and up and stdout and stderr
// drained into runDir/vmm.log (capped), and waits until QEMU answers
// on QMP (it is then set up) or exits (a setup error, quoted from the log).
// QEMU stays the daemon's child until the daemon exits; a goroutine reaps it.
func (b *Backend) launch(ctx context.Context, argv []string, runDir string, extra []*os.File, clone uintptr) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("qemu setup: %w", err)
	}
	logPath := filepath.Join(runDir, LogFile)
	logw, err := vmmproc.OpenRotatingLog(logPath, vmmLogMax, 1, true)
	if err != nil {
		return 0, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logw.Close()
		return 0, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: clone}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		logw.Close()
		return 0, fmt.Errorf("exec qemu: %w", err)
	}
	drained := make(chan struct{})
	go func() {
		logw.Drain(pr, func(err error) { b.log.Warn("qemu: vmm log: output dropped", "log", logPath, "err", err) })
		pr.Close()
		close(drained)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.NewTimer(setupTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			select {
			case <-drained:
			case <-time.After(time.Second):
			}
			msg := vmmproc.LogTail(logPath)
			if msg == "" {
				msg = fmt.Sprint(err)
			}
			return 0, fmt.Errorf("qemu failed: %s (log: %s)", msg, logPath)
		case <-ctx.Done():
			return 0, fmt.Errorf("qemu setup: %w", ctx.Err())
		case <-deadline.C:
			return 0, fmt.Errorf("qemu did not answer on qmp within %s (log: %s)", setupTimeout, logPath)
		case <-tick.C:
			if _, err := status(ctx, runDir); err == nil {
				return cmd.Process.Pid, nil
			}
		}
	}
}

// cleanupStart kills every QEMU started for runDir and removes its pidfile
// and socket. It scans /proc as well as the pidfile: QEMU may have been
// killed before it wrote the pidfile.
func (b *Backend) cleanupStart(runDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	for _, p := range match(runDir).Find() {
		if err := p.Kill(ctx); err != nil {
			b.log.Warn("qemu: cleanup after failed start", "pid", p.PID, "err", err)
		}
	}
	if err := removeRuntimeFiles(runDir); err != nil {
		b.log.Warn("qemu: cleanup after failed start", "err", err)
	}
}
