package qemu

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"banger/internal/api"
	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
)

const (
	// maxSerialLen is virtio-blk's limit on a disk serial (VIRTIO_BLK_ID_BYTES).
	maxSerialLen = 20
	// maxSocketPath is the longest unix socket path the kernel takes.
	maxSocketPath = 107
	// cleanupTimeout bounds the cleanup after a failed start.
	cleanupTimeout = 10 * time.Second
)

// Start launches QEMU for spec with -daemonize: the process we exec exits
// once the VM is set up, leaving the VMM reparented to init in its own
// session. Start then reads the pidfile and checks the QMP socket answers.
// QEMU's startup errors go to RunDir/vmm.log and are quoted in the error.
// On any failure nothing is left running and the pidfile and socket are gone.
func (b *Backend) Start(ctx context.Context, spec vmm.Spec) (vmm.Process, error) {
	if err := checkSpec(spec); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	runDir := filepath.Clean(spec.RunDir)
	spec.RunDir = runDir
	if err := vmmproc.PrepareRunDir(runDir, PIDFile, match(runDir), runtimeFiles()...); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}

	ok := false
	defer func() {
		if !ok {
			b.cleanupStart(runDir)
		}
	}()
	if err := b.launch(ctx, b.command(spec).Build(), runDir); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	pid, err := vmmproc.ReadPIDFile(filepath.Join(runDir, PIDFile))
	if err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: qemu started but left no pidfile: %w", err)
	}
	if !match(runDir).Alive(pid) {
		return vmm.Process{}, fmt.Errorf("start vm: qemu (pid %d) exited right after starting; see %s",
			pid, filepath.Join(runDir, LogFile))
	}
	if _, err := status(ctx, runDir); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: qemu (pid %d) does not answer on qmp: %w", pid, err)
	}
	ok = true
	return vmm.Process{PID: pid, Backend: b.Name()}, nil
}

// launch runs argv (a -daemonize QEMU) with stderr in runDir/vmm.log and
// waits for the foreground process to exit, which QEMU does once the
// daemonized child runs the VM, or at once on a setup error.
func (b *Backend) launch(ctx context.Context, argv []string, runDir string) error {
	logPath := filepath.Join(runDir, LogFile)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec qemu: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Killing the foreground qemu mid-setup could orphan a daemon that
		// has forked but not written its pidfile. Let setup finish (bounded);
		// the caller's cleanup then stops whatever runs.
		select {
		case <-done:
		case <-time.After(cleanupTimeout):
			cmd.Process.Kill()
			<-done
		}
		return fmt.Errorf("qemu setup: %w", ctx.Err())
	}
	if err != nil {
		msg := vmmproc.LogTail(logPath)
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("qemu failed: %s (log: %s)", msg, logPath)
	}
	return nil
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

// checkSpec rejects specs QEMU would misread or that would fail obscurely,
// with one api.ErrInvalid error listing every problem. Missing files are left
// to QEMU, whose message names them.
func checkSpec(s vmm.Spec) error {
	var msgs []string
	bad := func(format string, a ...any) { msgs = append(msgs, fmt.Sprintf(format, a...)) }
	absolute := func(what, path string, required bool) {
		switch {
		case path == "" && required:
			bad("%s path is empty", what)
		case path != "" && !filepath.IsAbs(path):
			bad("%s path %q is not absolute", what, path)
		}
	}
	absolute("run dir", s.RunDir, true)
	if s.RunDir != "" && len(filepath.Join(s.RunDir, QMPSocket)) > maxSocketPath {
		bad("run dir %q is too long for a unix socket path", s.RunDir)
	}
	absolute("kernel", s.Kernel, true)
	absolute("initrd", s.Initrd, false)
	absolute("serial log", s.SerialLog, false)
	if s.VCPUs < 1 {
		bad("vcpus must be at least 1, got %d", s.VCPUs)
	}
	if s.MemoryMiB < 1 {
		bad("memory must be at least 1 MiB, got %d", s.MemoryMiB)
	}
	for i, d := range s.Disks {
		absolute(fmt.Sprintf("disk %d", i), d.Path, true)
		if len(d.Serial) > maxSerialLen {
			bad("disk %d serial %q is longer than %d bytes", i, d.Serial, maxSerialLen)
		}
	}
	if n := s.Net; n != nil {
		if n.MAC != "" {
			if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 {
				bad("bad mac address %q", n.MAC)
			}
		}
		if len(n.Tap) > 15 || strings.ContainsAny(n.Tap, "/ ") {
			bad("bad tap device name %q", n.Tap)
		}
		if n.SSHHostPort < 0 || n.SSHHostPort > 65535 {
			bad("ssh host port %d out of range", n.SSHHostPort)
		}
	}
	if len(msgs) > 0 {
		return api.Errorf(api.ErrInvalid, "%s", strings.Join(msgs, "; "))
	}
	return nil
}
