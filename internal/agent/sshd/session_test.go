package sshd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestPTYWindowChange(t *testing.T) {
	ts := startServer(t, nil)
	sess, err := ts.goClient(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, _ := sess.StdinPipe()
	stdout, _ := sess.StdoutPipe()
	// window-change is a request without reply, processed apart from the
	// channel's data: wait (bounded, 5 s) for the new size to show.
	if err := sess.Start(`stty size; read x; i=0; while [ "$(stty size)" != "50 132" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; stty size`); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if line, _ := r.ReadString('\n'); strings.TrimSpace(line) != "24 80" {
		t.Fatalf("first size %q, want 24 80", line)
	}
	if err := sess.WindowChange(50, 132); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if strings.TrimSpace(line) != "" {
			lines = append(lines, strings.TrimSpace(line))
		}
		if err != nil {
			break
		}
	}
	if len(lines) == 0 || lines[len(lines)-1] != "50 132" {
		t.Fatalf("after resize got %q, want last line 50 132", lines)
	}
	if err := sess.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestSignalRequest(t *testing.T) {
	ts := startServer(t, nil)
	sess, err := ts.goClient(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Start("echo started; exec sleep 100"); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "started\n" {
		t.Fatalf("got %q", line)
	}
	if err := sess.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = sess.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "TERM" {
		t.Fatalf("wait: %v, want exit-signal TERM", err)
	}
}

func TestShellFromPasswd(t *testing.T) {
	passwd := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(passwd, []byte("daemon:x:1:1::/:/bin/false\nroot:x:0:0:root:/root:/bin/bash\n"), 0o644)
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("needs /bin/bash")
	}
	ts := startServer(t, func(s *sysPaths) { s.passwd = passwd; s.fallbackShell = "" })
	out := runGo(t, ts, "", `echo "$SHELL|$BASH_VERSION"`)
	shell, version, _ := strings.Cut(strings.TrimSpace(out.stdout), "|")
	if out.code != 0 || shell != "/bin/bash" || version == "" {
		t.Fatalf("got %+v, want bash as the shell", out)
	}
}

func TestNoShellRunsArgv(t *testing.T) {
	passwd := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/nonexistent/shell\n"), 0o644)
	ts := startServer(t, func(s *sysPaths) { s.passwd = passwd; s.fallbackShell = "" })

	if got := runGo(t, ts, "", "echo  $HOME  two"); got.code != 0 || got.stdout != "$HOME two\n" {
		t.Errorf("echo without a shell: %+v, want the argv printed verbatim", got)
	}
	if got := runGo(t, ts, "", "no-such-command-banger x"); got.code != 127 || !strings.Contains(got.stderr, "no-such-command-banger: command not found") {
		t.Errorf("missing command: %+v, want exit 127 and 'command not found'", got)
	}
	if got := runGo(t, ts, "", ""); got.code != 127 || !strings.Contains(got.stderr, "no shell") {
		t.Errorf("shell request: %+v, want exit 127 and 'no shell'", got)
	}
}

// runGo runs cmd with x/crypto's client (a shell request when cmd is "").
func runGo(t *testing.T, ts *testServer, stdin, cmd string) result {
	t.Helper()
	sess, err := ts.goClient(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdin, sess.Stdout, sess.Stderr = strings.NewReader(stdin), &out, &errb
	if cmd == "" {
		err = sess.Shell()
		if err == nil {
			err = sess.Wait()
		}
	} else {
		err = sess.Run(cmd)
	}
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		res.code = ee.ExitStatus()
	} else if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestUnknownChannelsAndSubsystemsRefused(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.goClient(t)
	if _, _, err := c.OpenChannel("x11", nil); err == nil {
		t.Error("x11 channel accepted")
	}
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestSubsystem("nope"); err == nil {
		t.Error("unknown subsystem accepted")
	}
	if _, err := c.Dial("tcp", "127.0.0.1:1"); err == nil {
		t.Error("forward to a closed port succeeded")
	}
}

func TestDisconnectedShellGetsHangup(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.goClient(t)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, _ := sess.StdinPipe()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "echo PID=$$\n")
	pid := readPID(t, stdout)
	c.Close()
	waitGone(t, pid)
}

// readPID reads output until a "PID=<n>" line printed by the shell.
func readPID(t *testing.T, r io.Reader) int {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var pid int
		line := strings.TrimSpace(sc.Text())
		if i := strings.LastIndex(line, "PID="); i >= 0 && !strings.Contains(line, "$$") {
			if _, err := fmt.Sscan(line[i+4:], &pid); err == nil {
				return pid
			}
		}
	}
	t.Fatalf("no PID line: %v", sc.Err())
	return 0
}

// waitGone waits until pid no longer exists.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still exists after the client went away", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServeLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	ts := startServer(t, nil)
	c := ts.goClient(t)
	if got := runGo(t, ts, "x", "cat"); got.stdout != "x" {
		t.Fatalf("exec: %+v", got)
	}
	// A forward, an agent session and a shell left open when Serve stops.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if conn, err := ln.Accept(); err == nil {
			io.Copy(io.Discard, conn)
			conn.Close()
		}
	}()
	if _, err := c.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	agent, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.RequestSubsystem("banger-agent"); err != nil {
		t.Fatal(err)
	}
	shell, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := shell.StdinPipe()
	stdout, _ := shell.StdoutPipe()
	if err := shell.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "echo PID=$$\n")
	pid := readPID(t, stdout)

	ts.stop()
	c.Close()
	ln.Close()
	waitGone(t, pid)
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var buf strings.Builder
			pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
