package firecracker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
)

const (
	// apiTimeout bounds one API exchange made on behalf of a caller, and the
	// wait for a new firecracker's API socket.
	apiTimeout = 10 * time.Second
	// cleanupTimeout bounds the cleanup after a failed start.
	cleanupTimeout = 10 * time.Second
)

// Start launches firecracker for spec in its own session (stdout, which is
// the guest's serial console, to spec.SerialLog; stderr to RunDir/vmm.log),
// writes its pidfile, configures the VM through the API and starts it. On
// any failure nothing is left running and the pidfile and socket are gone.
func (b *Backend) Start(ctx context.Context, spec vmm.Spec) (vmm.Process, error) {
	if err := checkSpec(spec); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	runDir := filepath.Clean(spec.RunDir)
	spec.RunDir = runDir
	if err := vmmproc.PrepareRunDir(runDir, PIDFile, match(runDir), runtimeFiles()...); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	cmd, exited, err := b.launch(spec)
	if err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			b.cleanupStart(cmd, exited, runDir)
		}
	}()
	pid := cmd.Process.Pid
	if err := vmmproc.WritePIDFile(filepath.Join(runDir, PIDFile), pid); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w", err)
	}
	c := NewClient(apiSocket(runDir))
	if err := waitAPI(ctx, c, exited); err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: firecracker (pid %d): %w%s", pid, err, logTail(runDir))
	}
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	err = configure(cctx, c, spec)
	cancel()
	if err != nil {
		return vmm.Process{}, fmt.Errorf("start vm: %w%s", err, logTail(runDir))
	}
	ok = true
	return vmm.Process{PID: pid, Backend: Name}, nil
}

// launch starts firecracker detached (own session) and returns it with a
// channel closed once it has exited and been reaped.
func (b *Backend) launch(spec vmm.Spec) (*exec.Cmd, <-chan struct{}, error) {
	logf, err := os.OpenFile(filepath.Join(spec.RunDir, LogFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	// Firecracker's logger writes only to an existing file.
	fcLog, err := os.OpenFile(filepath.Join(spec.RunDir, FCLogFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, nil, err
	}
	fcLog.Close()
	serialPath := spec.SerialLog
	if serialPath == "" {
		serialPath = os.DevNull
	}
	serial, err := os.OpenFile(serialPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("serial log: %w", err)
	}
	defer serial.Close()

	argv := b.argv(spec.RunDir)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = serial // the guest's serial console
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("exec firecracker: %w", err)
	}
	// Reap it whenever it exits, so it never lingers as our zombie.
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	return cmd, exited, nil
}

// waitAPI polls GET / until the new firecracker answers, it exits, ctx ends
// or apiTimeout passes.
func waitAPI(ctx context.Context, c *Client, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		_, err := c.InstanceInfo(rctx)
		rcancel()
		if err == nil {
			return nil
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			return err
		}
		select {
		case <-exited:
			return errors.New("exited right after starting")
		case <-ctx.Done():
			return fmt.Errorf("api socket did not answer: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cleanupStart kills the firecracker of a failed start and removes its
// pidfile and socket.
func (b *Backend) cleanupStart(cmd *exec.Cmd, exited <-chan struct{}, runDir string) {
	cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(cleanupTimeout):
		b.log.Warn("firecracker: cleanup after failed start: process did not exit", "pid", cmd.Process.Pid)
	}
	if err := removeRuntimeFiles(runDir); err != nil {
		b.log.Warn("firecracker: cleanup after failed start", "err", err)
	}
}

// logTail is "; firecracker says: ..." quoting the end of the run
// directory's logs, or "" when they are empty.
func logTail(runDir string) string {
	var parts []string
	for _, name := range []string{LogFile, FCLogFile} {
		if msg := vmmproc.LogTail(filepath.Join(runDir, name)); msg != "" {
			parts = append(parts, msg)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; firecracker says: " + strings.Join(parts, "; ")
}

// checkSpec is vmm.CheckSpec, then the kernel's format: Firecracker boots
// only an uncompressed x86-64 ELF vmlinux.
func checkSpec(s vmm.Spec) error {
	if err := vmm.CheckSpec(s, caps); err != nil {
		return err
	}
	if s.Kernel != "" {
		return checkKernel(s.Kernel)
	}
	return nil
}
