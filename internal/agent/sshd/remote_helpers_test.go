package sshd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"banger/internal/agent/proto"
)

// echoServer listens on network/addr on the "host" side and answers each
// connection's first line with "echo: LINE".
func echoServer(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
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
	return ln
}

// exchange dials network/addr (the "guest" side of a remote forward),
// sends a line and returns the answer.
func exchange(network, addr, line string) (string, error) {
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := io.ReadAll(c)
	return string(got), err
}

// waitFor polls cond until it holds; it fails the test after 30 s. Used for
// effects the server applies after the client has moved on (a connection's
// end, a cancel sent without reply).
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// forwardWorks is a waitFor condition: a line sent to network/addr comes
// back from the host-side echo server.
func forwardWorks(network, addr string) func() error {
	return func() error {
		got, err := exchange(network, addr, "via remote forward")
		if err != nil {
			return err
		}
		if got != "echo: via remote forward\n" {
			return fmt.Errorf("got %q through the forward", got)
		}
		return nil
	}
}

// refused is a waitFor condition: nothing listens at network/addr.
func refused(network, addr string) func() error {
	return func() error {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("%s %s still accepts connections", network, addr)
		}
		if network == "unix" && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("socket file still there: %w", err)
		}
		return nil
	}
}

// background starts an OpenSSH client that runs until the test ends (or
// stop is called); its stderr is returned for failure messages.
func (ts *testServer) background(t *testing.T, env []string, args ...string) (stop func(), stderr *lockedBuffer) {
	t.Helper()
	requireTool(t, "ssh")
	cmd := exec.Command("ssh", append(ts.sshArgs("-p"), args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr = &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() {
		cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	return stop, stderr
}

// master starts a ControlMaster connection to ts and returns its
// ControlPath once "ssh -O check" reports it running.
func (ts *testServer) master(t *testing.T, extra ...string) string {
	t.Helper()
	ctl := filepath.Join(t.TempDir(), "ctl")
	args := append([]string{"-M", "-S", ctl, "-N", "-o", "ControlPersist=no"}, extra...)
	_, stderr := ts.background(t, nil, append(args, target)...)
	waitFor(t, "master running", func() error {
		res := ts.ssh(t, "", "-S", ctl, "-O", "check", target)
		if res.code != 0 {
			return fmt.Errorf("ssh -O check: %+v (master stderr %q)", res, stderr.String())
		}
		return nil
	})
	t.Cleanup(func() { ts.ssh(t, "", "-S", ctl, "-O", "exit", target) })
	return ctl
}

// authorizeKey adds an authorized key to ts through the agent protocol.
func (ts *testServer) authorizeKey(t *testing.T, line string) {
	t.Helper()
	sess, err := ts.goClient(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem(agentSubsystem); err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(proto.Request{Op: proto.OpAuthorizeKey, Key: line})
	fmt.Fprintf(in, "%s\n", req)
	var resp proto.Response
	if err := json.NewDecoder(out).Decode(&resp); err != nil || !resp.OK {
		t.Fatalf("authorize key: %+v %v", resp, err)
	}
}

// socketMode returns the permission bits of a socket file, failing the
// test when path is not a socket.
func socketMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("%s is %v, not a socket", path, fi.Mode())
	}
	return fi.Mode().Perm()
}

// gone reports an error unless path does not exist.
func gone(path string) error {
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s still exists (%v)", path, err)
	}
	return nil
}

// lines splits output into trimmed non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
