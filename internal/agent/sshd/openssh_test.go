package sshd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const target = "root@127.0.0.1"

func TestOpenSSHExec(t *testing.T) {
	ts := startServer(t, nil)
	cases := []struct {
		name, cmd, stdin   string
		code               int
		stdout, stderrPart string
	}{
		{name: "exit status", cmd: "exit 7", code: 7},
		{name: "stdout and stderr apart", cmd: "echo out; echo err >&2; exit 3", code: 3, stdout: "out\n", stderrPart: "err\n"},
		{name: "stdin", cmd: "tr a-z A-Z", stdin: "hello\n", stdout: "HELLO\n"},
		{name: "missing command", cmd: "no-such-command-banger", code: 127, stderrPart: "not found"},
		{name: "home and cwd", cmd: `echo "$HOME $(pwd) $USER"`, stdout: ts.home + " " + ts.home + " root\n"},
		{name: "config env", cmd: `echo "$BANGER_TEST_ENV"`, stdout: "from-config\n"},
		{name: "default path", cmd: `echo "$PATH"`, stdout: defaultPath + "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := ts.ssh(t, tc.stdin, target, tc.cmd)
			if res.code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", res.code, tc.code, res.stderr)
			}
			if res.stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", res.stdout, tc.stdout)
			}
			if !strings.Contains(res.stderr, tc.stderrPart) {
				t.Errorf("stderr %q, want it to contain %q", res.stderr, tc.stderrPart)
			}
			if tc.stderrPart == "" && res.stderr != "" {
				t.Errorf("unexpected stderr %q", res.stderr)
			}
		})
	}
}

func TestOpenSSHEnvRequest(t *testing.T) {
	ts := startServer(t, nil)
	res := ts.ssh(t, "", "-o", "SetEnv=BANGER_A=one BANGER_TEST_ENV=client-wins", target, `echo "$BANGER_A $BANGER_TEST_ENV"`)
	if res.code != 0 || res.stdout != "one client-wins\n" {
		t.Fatalf("got %+v, want stdout %q", res, "one client-wins\n")
	}
}

func TestOpenSSHPTY(t *testing.T) {
	ts := startServer(t, nil)
	res := runToolEnv(t, []string{"TERM=banger-term"}, "ssh", append(ts.sshArgs("-p"), "-tt", target, `tty; echo "term=$TERM"; exit 4`)...)
	if res.code != 4 {
		t.Fatalf("exit %d, want 4 (stderr %q)", res.code, res.stderr)
	}
	if !regexp.MustCompile(`(?m)^/dev/pts/\d+\r?$`).MatchString(res.stdout) {
		t.Errorf("tty printed %q, want a /dev/pts/N line", res.stdout)
	}
	if !strings.Contains(res.stdout, "term=banger-term") {
		t.Errorf("stdout %q lacks TERM from the pty request", res.stdout)
	}
	plain := ts.ssh(t, "", target, "tty")
	if plain.code == 0 || !strings.Contains(plain.stdout, "not a tty") {
		t.Errorf("without -tt: got %+v, want 'not a tty' and a failure", plain)
	}
}

// runToolEnv is runTool with extra environment for the tool.
func runToolEnv(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	requireTool(t, name)
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestOpenSSHScpBothWays(t *testing.T) {
	for _, mode := range []struct{ name, flag string }{{"sftp", "-s"}, {"legacy", "-O"}} {
		t.Run(mode.name, func(t *testing.T) {
			ts := startServer(t, nil)
			dir := t.TempDir()
			src := filepath.Join(dir, "src.bin")
			data := bytes.Repeat([]byte("banger scp\x00\xff"), 50000)
			if err := os.WriteFile(src, data, 0o640); err != nil {
				t.Fatal(err)
			}
			remote := filepath.Join(dir, "remote.bin")
			args := append(ts.sshArgs("-P"), mode.flag, src, target+":"+remote)
			if res := runTool(t, "", "scp", args...); res.code != 0 {
				t.Fatalf("scp up: %+v", res)
			}
			back := filepath.Join(dir, "back.bin")
			args = append(ts.sshArgs("-P"), mode.flag, target+":"+remote, back)
			if res := runTool(t, "", "scp", args...); res.code != 0 {
				t.Fatalf("scp down: %+v", res)
			}
			got, err := os.ReadFile(back)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("round trip changed the file: %d bytes, want %d", len(got), len(data))
			}
		})
	}
}

func TestOpenSSHSftpBatch(t *testing.T) {
	ts := startServer(t, nil)
	dir := t.TempDir()
	for _, name := range []string{"alpha.txt", "beta.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	batch := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(batch, []byte("ls -1 "+dir+"\npwd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runTool(t, "", "sftp", append(ts.sshArgs("-P"), "-b", batch, target)...)
	if res.code != 0 {
		t.Fatalf("sftp: %+v", res)
	}
	for _, want := range []string{"alpha.txt", "beta.txt", ts.home} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("sftp output %q lacks %q", res.stdout, want)
		}
	}
}

func TestOpenSSHLocalForward(t *testing.T) {
	requireTool(t, "ssh")
	ts := startServer(t, nil)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "echo: %s", line)
			}()
		}
	}()
	localPort := freePort(t)
	fwd := fmt.Sprintf("%d:127.0.0.1:%d", localPort, echo.Addr().(*net.TCPAddr).Port)
	cmd := exec.Command("ssh", append(ts.sshArgs("-p"), "-N", "-o", "ExitOnForwardFailure=yes", "-L", fwd, target)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	var conn net.Conn
	for deadline := time.Now().Add(30 * time.Second); ; {
		conn, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", localPort))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("forwarded port never opened: %v (ssh stderr %q)", err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "through the tunnel\n")
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "echo: through the tunnel\n" {
		t.Fatalf("got %q through the forward", got)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestOpenSSHRefusals(t *testing.T) {
	ts := startServer(t, nil)
	t.Run("changed host key", func(t *testing.T) {
		_, other := newKeyPair(t)
		known := fmt.Sprintf("[127.0.0.1]:%d %s\n", ts.port, authorizedLine(other.PublicKey()))
		if err := os.WriteFile(ts.knownHosts, []byte(known), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(ts.knownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s\n", ts.port, authorizedLine(ts.hostPub))), 0o600)
		res := ts.ssh(t, "", target, "echo in")
		if res.code != 255 || res.stdout != "" || !strings.Contains(res.stderr, "Host key verification failed") {
			t.Fatalf("got %+v, want a host key verification failure", res)
		}
	})
	t.Run("unauthorized key", func(t *testing.T) {
		pemBytes, _ := newKeyPair(t)
		key := filepath.Join(t.TempDir(), "other")
		if err := os.WriteFile(key, pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		args := append(ts.sshArgs("-p"), "-i", key, target, "echo in")
		args = append(args[:4], args[6:]...) // drop the authorized -i
		res := runTool(t, "", "ssh", args...)
		if res.code != 255 || !strings.Contains(res.stderr, "Permission denied") {
			t.Fatalf("got %+v, want permission denied", res)
		}
	})
	t.Run("other user", func(t *testing.T) {
		res := ts.ssh(t, "", "nobody@127.0.0.1", "echo in")
		if res.code != 255 || !strings.Contains(res.stderr, "Permission denied") {
			t.Fatalf("got %+v, want permission denied", res)
		}
	})
	if res := ts.ssh(t, "", target, "echo in"); res.stdout != "in\n" {
		t.Fatalf("authorized login after refusals: %+v", res)
	}
}

func TestOpenSSHDisconnectSendsSIGHUP(t *testing.T) {
	requireTool(t, "ssh")
	ts := startServer(t, nil)
	cmd := exec.Command("ssh", append(ts.sshArgs("-p"), target, "echo $$; exec sleep 100")...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("read pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("sleep (pid %d) is not running: %v", pid, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitGone(t, pid)
}

func TestOpenSSHBackgroundChildDoesNotHang(t *testing.T) {
	ts := startServer(t, nil)
	// The child keeps stdout open; the session still ends soon after the
	// shell exits (runTool gives up after a minute).
	res := ts.ssh(t, "", target, "sleep 1000 & echo $!")
	pid, err := strconv.Atoi(strings.TrimSpace(res.stdout))
	if err != nil {
		t.Fatalf("got %+v: %v", res, err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if res.code != 0 {
		t.Fatalf("exit %d (stderr %q)", res.code, res.stderr)
	}
}

// A server started with SIGHUP ignored (under nohup, say) still has its
// sessions' processes hung up when the client goes: exec keeps an ignored
// signal ignored, so the server catches SIGHUP instead.
func TestOpenSSHDisconnectSendsSIGHUPWhenServerIgnoredIt(t *testing.T) {
	signal.Ignore(syscall.SIGHUP)
	defer signal.Reset(syscall.SIGHUP)
	TestOpenSSHDisconnectSendsSIGHUP(t)
}
