package sshd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"
)

// outputGrace bounds how long output is still forwarded after the process
// exits, when a background child keeps the output open.
const outputGrace = 2 * time.Second

// waitResult is what a process's wait function returned.
type waitResult struct {
	status syscall.WaitStatus
	err    error
}

// runProcess runs cmdline (a login shell when empty) as the session's
// process and returns how it ended.
func (ss *session) runProcess(cmdline string) exitInfo {
	sys := ss.srv.sys
	shell := loginShell(sys.passwd, sys.fallbackShell)
	ss.mu.Lock()
	hasPTY, term, clientEnv := ss.hasPTY, ss.term, ss.env
	ss.mu.Unlock()
	extra := append([]string{"SSH_CONNECTION=" + connectionString(ss.conn)}, ss.srv.cfg.Env...)
	extra = append(extra, ss.srv.secretEnv()...)
	env := sessionEnv(sys.home, shell, term, extra, clientEnv)
	if sock := ss.agentSocket(); sock != "" {
		env = dedupEnv(append(env, "SSH_AUTH_SOCK="+sock))
	}
	cmd, err := buildCommand(shell, cmdline, sys.home, env)
	if err != nil {
		return ss.startFailed(err)
	}
	if hasPTY {
		return ss.runPTY(cmd)
	}
	return ss.runPipes(cmd)
}

// startFailed reports a process that could not start like a shell would.
func (ss *session) startFailed(err error) exitInfo {
	fmt.Fprintf(ss.ch.Stderr(), "banger-agent: %v\r\n", err)
	return exitInfo{code: startFailureStatus(err)}
}

// runPipes runs cmd with stdin, stdout and stderr on pipes, so the
// client gets stdout and stderr apart.
func (ss *session) runPipes(cmd *exec.Cmd) exitInfo {
	var parentEnds, childEnds []*os.File
	closeAll := func(files []*os.File) {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, nil
		}
		return r, w
	}
	inR, inW := pipe()
	outR, outW := pipe()
	errR, errW := pipe()
	parentEnds = []*os.File{inW, outR, errR}
	childEnds = []*os.File{inR, outW, errW}
	for _, f := range append(parentEnds, childEnds...) {
		if f == nil {
			closeAll(parentEnds)
			closeAll(childEnds)
			return ss.startFailed(errors.New("create pipes failed"))
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	wait, err := ss.srv.sys.start(cmd)
	closeAll(childEnds)
	if err != nil {
		closeAll(parentEnds)
		return ss.startFailed(err)
	}
	ss.setPgid(cmd.Process.Pid)
	go func() {
		io.Copy(inW, ss.ch)
		inW.Close()
	}()
	var out sync.WaitGroup
	out.Add(2)
	go func() { defer out.Done(); io.Copy(ss.ch, outR) }()
	go func() { defer out.Done(); io.Copy(ss.ch.Stderr(), errR) }()
	return ss.waitProcess(cmd, wait, &out, func() { outR.Close(); errR.Close(); inW.Close() })
}

// runPTY runs cmd on a new PTY whose master is copied to and from the channel.
func (ss *session) runPTY(cmd *exec.Cmd) exitInfo {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return ss.startFailed(fmt.Errorf("open pty: %w", err))
	}
	release := func() {
		ss.mu.Lock()
		ss.ptmx = nil
		ss.mu.Unlock()
		ptmx.Close()
	}
	ss.mu.Lock()
	ss.ptmx = ptmx // from now on window-change requests resize it
	pty.Setsize(ptmx, &ss.winsize)
	ss.mu.Unlock()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	wait, err := ss.srv.sys.start(cmd)
	tty.Close()
	if err != nil {
		release()
		return ss.startFailed(err)
	}
	ss.setPgid(cmd.Process.Pid)
	go io.Copy(ptmx, ss.ch)
	var out sync.WaitGroup
	out.Add(1)
	go func() { defer out.Done(); io.Copy(ss.ch, ptmx) }()
	return ss.waitProcess(cmd, wait, &out, release)
}

// waitProcess waits for the started cmd to exit, then for its output to be
// forwarded (at most outputGrace longer), then calls release. If the
// client goes away first, the process group gets SIGHUP and the process is
// left to a detached waiter.
func (ss *session) waitProcess(cmd *exec.Cmd, wait func() (syscall.WaitStatus, error), out *sync.WaitGroup, release func()) exitInfo {
	pid := cmd.Process.Pid
	exited := make(chan waitResult, 1)
	go func() {
		st, err := wait()
		exited <- waitResult{st, err}
	}()
	outDone := make(chan struct{})
	go func() { out.Wait(); close(outDone) }()

	var res waitResult
	select {
	case res = <-exited:
	case <-ss.hangup:
		ss.log.Info("ssh client gone: sending SIGHUP", "pid", pid)
		syscall.Kill(-pid, syscall.SIGHUP)
		ss.setPgid(0)
		release()
		return exitInfo{hungUp: true}
	}
	ss.setPgid(0)
	select {
	case <-outDone:
	case <-time.After(outputGrace):
	case <-ss.hangup:
	}
	release()
	<-outDone
	if res.err != nil {
		ss.log.Warn("wait for session process", "pid", pid, "err", res.err)
	}
	code, sig, core := exitCode(res.status)
	return exitInfo{code: code, signal: sig, core: core}
}

// setPgid records the running process group (0: none) for signal requests.
func (ss *session) setPgid(pgid int) {
	ss.mu.Lock()
	ss.pgid = pgid
	ss.mu.Unlock()
}

// connectionString is SSH_CONNECTION: client address and port, server
// address and port.
func connectionString(conn *ssh.ServerConn) string {
	split := func(a net.Addr) string {
		host, port, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		return host + " " + port
	}
	return split(conn.RemoteAddr()) + " " + split(conn.LocalAddr())
}
