package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/guest"

	"github.com/hashicorp/nomad/plugins/drivers"
	"golang.org/x/crypto/ssh"
)

// maxExecOutput bounds what ExecTask (script checks) keeps of each stream:
// the guest is not trusted to send little.
const maxExecOutput = 1 << 20

// dialGuest reaches the task's guest agent over SSH with the task's key.
// The daemon (re)authorizes the key and names the address and the pinned
// host key; a guest presenting another host key is refused.
func (d *Driver) dialGuest(ctx context.Context, h *taskHandle) (*guest.Client, error) {
	acc, err := d.client().VMAuthorizeKey(ctx, api.VMAuthorizeKeyParams{IDOrName: h.vmID, PublicKey: authorizedLine(h.signer)})
	if err != nil {
		return nil, fmt.Errorf("banger: exec in vm %s: %w", h.vmName, err)
	}
	addr := net.JoinHostPort(acc.Host, strconv.Itoa(acc.Port))
	gc, err := guest.Dial(ctx, addr, h.signer, acc.HostKey)
	if err != nil {
		return nil, fmt.Errorf("banger: exec in vm %s: %w", h.vmName, err)
	}
	return gc, nil
}

// shellLine quotes argv for the guest's shell, which runs exec requests.
func shellLine(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// ExecTask runs a command in the guest (script checks) with a timeout.
func (d *Driver) ExecTask(taskID string, cmd []string, timeout time.Duration) (*drivers.ExecTaskResult, error) {
	h, ok := d.tasks.get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	if len(cmd) == 0 {
		return nil, errors.New("banger: exec: no command")
	}
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	gc, err := d.dialGuest(ctx, h)
	if err != nil {
		return nil, err
	}
	defer gc.Close()
	var stdout, stderr capped
	code, err := gc.Run(ctx, shellLine(cmd), nil, &stdout, &stderr)
	if err != nil {
		return nil, fmt.Errorf("banger: exec in vm %s: %w", h.vmName, err)
	}
	return &drivers.ExecTaskResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(),
		ExitResult: &drivers.ExitResult{ExitCode: code}}, nil
}

// capped keeps the first maxExecOutput bytes written to it.
type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := maxExecOutput - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// ExecTaskStreaming runs a command in the guest for `nomad alloc exec`,
// with a PTY when asked (window size changes follow), through the guest
// agent's SSH server. Ending ctx kills the command.
func (d *Driver) ExecTaskStreaming(ctx context.Context, taskID string, o *drivers.ExecOptions) (*drivers.ExitResult, error) {
	h, ok := d.tasks.get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	if len(o.Command) == 0 {
		return nil, errors.New("banger: exec: no command")
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	gc, err := d.dialGuest(dctx, h)
	cancel()
	if err != nil {
		return nil, err
	}
	defer gc.Close()
	sess, err := gc.SSH().NewSession()
	if err != nil {
		return nil, fmt.Errorf("banger: exec in vm %s: open session: %w", h.vmName, err)
	}
	defer sess.Close()
	if o.Tty {
		if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
			return nil, fmt.Errorf("banger: exec in vm %s: pty: %w", h.vmName, err)
		}
		go func() {
			for sz := range o.ResizeCh {
				sess.WindowChange(sz.Height, sz.Width)
			}
		}()
	}
	sess.Stdout, sess.Stderr = o.Stdout, o.Stderr
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("banger: exec in vm %s: stdin: %w", h.vmName, err)
	}
	if err := sess.Start(shellLine(o.Command)); err != nil {
		return nil, fmt.Errorf("banger: exec in vm %s: start: %w", h.vmName, err)
	}
	if o.Stdin != nil {
		go func() {
			io.Copy(stdin, o.Stdin)
			stdin.Close()
		}()
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		return nil, ctx.Err()
	}
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return &drivers.ExitResult{}, nil
	case errors.As(err, &exitErr):
		return &drivers.ExitResult{ExitCode: exitErr.ExitStatus()}, nil
	default:
		return nil, fmt.Errorf("banger: exec in vm %s: %w", h.vmName, err)
	}
}

// SignalTask sends a signal to the VM's VMM process (QEMU or Firecracker),
// not to a process in the guest: STOP and CONT freeze and thaw the whole VM,
// the others end it abruptly. The daemon accepts KILL, TERM, INT, HUP, QUIT,
// USR1, USR2, STOP and CONT.
func (d *Driver) SignalTask(taskID string, signal string) error {
	h, ok := d.tasks.get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	if _, err := d.client().VMKill(ctx, api.VMKillParams{IDOrName: h.vmID, Signal: signal}); err != nil {
		return fmt.Errorf("banger: signal vm %s: %w", h.vmName, err)
	}
	h.check()
	return nil
}
