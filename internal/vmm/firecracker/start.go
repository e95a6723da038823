package firecracker

import (
	"context"
	"errors"
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
	// maxSocketPath is the longest unix socket path the kernel takes.
	maxSocketPath = 107
	// maxVCPUs is Firecracker's limit (machine-config vcpu_count maximum).
	maxVCPUs = 32
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

// checkSpec rejects specs Firecracker cannot run or would fail on obscurely,
// with one api.ErrInvalid error listing every problem.
func checkSpec(s vmm.Spec) error {
	var msgs []string
	bad := func(format string, a ...any) { msgs = append(msgs, fmt.Sprintf(format, a...)) }
	absolute := func(what, path string, required bool) bool {
		switch {
		case path == "" && required:
			bad("%s path is empty", what)
		case path != "" && !filepath.IsAbs(path):
			bad("%s path %q is not absolute", what, path)
		default:
			return path != ""
		}
		return false
	}
	absolute("run dir", s.RunDir, true)
	if s.RunDir != "" && len(filepath.Join(s.RunDir, APISocket)) > maxSocketPath {
		bad("run dir %q is too long for a unix socket path", s.RunDir)
	}
	kernelOK := absolute("kernel", s.Kernel, true)
	absolute("initrd", s.Initrd, false)
	absolute("serial log", s.SerialLog, false)
	if s.VCPUs < 1 || s.VCPUs > maxVCPUs {
		bad("firecracker runs 1 to %d vcpus, got %d", maxVCPUs, s.VCPUs)
	}
	if s.MemoryMiB < 1 {
		bad("memory must be at least 1 MiB, got %d", s.MemoryMiB)
	}
	if len(s.Disks) > maxDisks {
		bad("firecracker backend attaches at most %d disks, got %d", maxDisks, len(s.Disks))
	}
	for i, d := range s.Disks {
		absolute(fmt.Sprintf("disk %d", i), d.Path, true)
		if d.Serial != "" && !validSerial(d.Serial) {
			bad("disk %d serial %q must be letters, digits, '-' or '_'", i, d.Serial)
		}
	}
	if n := s.Net; n != nil {
		if n.Tap == "" {
			bad("firecracker has no user-mode networking: the vm needs a tap device (bridge networking)")
		} else if len(n.Tap) > 15 || strings.ContainsAny(n.Tap, "/ ") {
			bad("bad tap device name %q", n.Tap)
		}
		if n.MAC != "" {
			if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 {
				bad("bad mac address %q", n.MAC)
			}
		}
	}
	if len(msgs) > 0 {
		return api.Errorf(api.ErrInvalid, "%s", strings.Join(msgs, "; "))
	}
	if kernelOK {
		return checkKernel(s.Kernel)
	}
	return nil
}

// validSerial reports whether a disk serial can travel in banger.disks=:
// letters, digits, '-' and '_' only.
func validSerial(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
