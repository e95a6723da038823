package sshd

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestOpenSSHRemoteForwardTCP: ssh -R carries a connection made on the
// guest side (here, the test dialing the server's loopback) to a server on
// the client's side, and the listener goes away with the connection.
func TestOpenSSHRemoteForwardTCP(t *testing.T) {
	ts := startServer(t, nil)
	host := echoServer(t, "tcp", "127.0.0.1:0")
	guestPort := freePort(t)
	guest := fmt.Sprintf("127.0.0.1:%d", guestPort)
	fwd := fmt.Sprintf("%d:127.0.0.1:%d", guestPort, host.Addr().(*net.TCPAddr).Port)
	stop, stderr := ts.background(t, nil, "-N", "-o", "ExitOnForwardFailure=yes", "-R", fwd, target)
	waitFor(t, "remote forward carries a request (ssh stderr: "+stderr.String()+")", forwardWorks("tcp", guest))
	// Several connections at once.
	errs := make(chan error, 5)
	for i := 0; i < 5; i++ {
		go func() { errs <- forwardWorks("tcp", guest)() }()
	}
	for i := 0; i < 5; i++ {
		if err := <-errs; err != nil {
			t.Errorf("concurrent connection %d: %v", i, err)
		}
	}
	stop()
	waitFor(t, "listener closed when the connection ended", refused("tcp", guest))
}

// TestOpenSSHRemoteDynamicForward: ssh -R PORT (no target) makes the
// client a SOCKS proxy reached from the guest's loopback.
func TestOpenSSHRemoteDynamicForward(t *testing.T) {
	ts := startServer(t, nil)
	host := echoServer(t, "tcp", "127.0.0.1:0")
	guest := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, stderr := ts.background(t, nil, "-N", "-o", "ExitOnForwardFailure=yes", "-R", strings.TrimPrefix(guest, "127.0.0.1:"), target)
	hostAddr := host.Addr().(*net.TCPAddr)
	waitFor(t, "SOCKS through ssh -R PORT (ssh stderr: "+stderr.String()+")", func() error {
		c, err := net.DialTimeout("tcp", guest, 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		// SOCKS5: no authentication, then CONNECT to the echo server.
		req := []byte{5, 1, 0, 5, 1, 0, 1}
		req = append(req, hostAddr.IP.To4()...)
		req = append(req, byte(hostAddr.Port>>8), byte(hostAddr.Port))
		if _, err := c.Write(req); err != nil {
			return err
		}
		reply := make([]byte, 12)
		if _, err := io.ReadFull(c, reply); err != nil {
			return fmt.Errorf("SOCKS reply: %w", err)
		}
		if reply[0] != 5 || reply[1] != 0 || reply[3] != 0 {
			return fmt.Errorf("SOCKS refused: % x", reply)
		}
		io.WriteString(c, "socks\n")
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "echo: socks\n" {
			return fmt.Errorf("through SOCKS: %q %v", got, err)
		}
		return nil
	})
}

// TestOpenSSHRemoteForwardWildcardRefused: guest-side binds stay on
// loopback (GatewayPorts no); a wildcard or outside address is refused.
func TestOpenSSHRemoteForwardWildcardRefused(t *testing.T) {
	ts := startServer(t, nil)
	for _, bind := range []string{"0.0.0.0", "[::]", "192.0.2.1"} {
		fwd := fmt.Sprintf("%s:%d:127.0.0.1:9", bind, freePort(t))
		res := ts.ssh(t, "", "-o", "ExitOnForwardFailure=yes", "-R", fwd, target, "sleep 20")
		if res.code != 255 {
			t.Errorf("-R %s: got %+v, want the forward refused and ssh to exit 255", fwd, res)
		}
	}
	// The plain and localhost forms are accepted. OpenSSH sends "*" as an
	// empty address, which means loopback here as with GatewayPorts no.
	for _, bind := range []string{"", "localhost:", "127.0.0.1:", "*:"} {
		host := echoServer(t, "tcp", "127.0.0.1:0")
		port := freePort(t)
		fwd := fmt.Sprintf("%s%d:127.0.0.1:%d", bind, port, host.Addr().(*net.TCPAddr).Port)
		stop, stderr := ts.background(t, nil, "-N", "-o", "ExitOnForwardFailure=yes", "-R", fwd, target)
		waitFor(t, "-R "+fwd+" (ssh stderr: "+stderr.String()+")", forwardWorks("tcp", fmt.Sprintf("127.0.0.1:%d", port)))
		stop()
	}
}

// TestOpenSSHRemoteForwardUnix: -R /guest/socket:/host/socket, mode 0600,
// removed when the connection ends; an existing file is never replaced.
func TestOpenSSHRemoteForwardUnix(t *testing.T) {
	ts := startServer(t, nil)
	dir := t.TempDir()
	hostSock := filepath.Join(dir, "host.sock")
	echoServer(t, "unix", hostSock)
	guestSock := filepath.Join(dir, "guest.sock")
	stop, stderr := ts.background(t, nil, "-N", "-o", "ExitOnForwardFailure=yes", "-R", guestSock+":"+hostSock, target)
	waitFor(t, "unix remote forward (ssh stderr: "+stderr.String()+")", forwardWorks("unix", guestSock))
	if mode := socketMode(t, guestSock); mode != 0o600 {
		t.Errorf("guest socket mode %o, want 600", mode)
	}
	stop()
	waitFor(t, "socket removed when the connection ended", func() error { return gone(guestSock) })
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind in the socket's folder: %v", entries)
	}

	t.Run("existing file kept", func(t *testing.T) {
		taken := filepath.Join(dir, "taken")
		if err := os.WriteFile(taken, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		res := ts.ssh(t, "", "-o", "ExitOnForwardFailure=yes", "-R", taken+":"+hostSock, target, "sleep 20")
		if res.code != 255 {
			t.Errorf("forward onto an existing file: %+v, want refused", res)
		}
		if data, err := os.ReadFile(taken); err != nil || string(data) != "mine" {
			t.Errorf("existing file changed: %q %v", data, err)
		}
	})
	t.Run("stale socket replaced", func(t *testing.T) {
		stale := filepath.Join(dir, "stale.sock")
		ln, err := net.Listen("unix", stale)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
		stop, stderr := ts.background(t, nil, "-N", "-o", "ExitOnForwardFailure=yes", "-R", stale+":"+hostSock, target)
		waitFor(t, "forward over a stale socket (ssh stderr: "+stderr.String()+")", forwardWorks("unix", stale))
		stop()
	})
}

// TestOpenSSHMultiplexedExitStatus: every short session through a
// ControlMaster gets its exit status. The master closes a session's channel
// as soon as EOF went both ways; a status the server sent after its EOF was
// lost now and then, and the multiplexed ssh exited 255.
func TestOpenSSHMultiplexedExitStatus(t *testing.T) {
	ts := startServer(t, nil)
	ctl := ts.master(t)
	for i := 0; i < 40; i++ {
		want := i % 4
		res := ts.ssh(t, "", "-S", ctl, target, fmt.Sprintf("echo %d; exit %d", i, want))
		if res.code != want || res.stdout != fmt.Sprintf("%d\n", i) {
			t.Fatalf("session %d through the master: %+v, want code %d", i, res, want)
		}
	}
}

// TestOpenSSHMultiplexing: a ControlMaster connection carries several
// sessions at once, forwards added and cancelled with -O forward/cancel
// (dynamic port included), survives client keepalives, and -O exit ends it
// with every forward.
func TestOpenSSHMultiplexing(t *testing.T) {
	ts := startServer(t, nil)
	ctl := ts.master(t, "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=3")
	mux := func(stdin string, args ...string) result {
		return ts.ssh(t, stdin, append([]string{"-S", ctl}, args...)...)
	}

	// Sessions: a long one runs while another one runs beside it, and
	// both report the same TCP connection.
	first, stderr := ts.background(t, nil, "-S", ctl, target, "sleep 30")
	second := mux("", target, `echo "$SSH_CONNECTION"; sleep 6`)
	third := mux("", target, `echo "$SSH_CONNECTION"`)
	if second.code != 0 || third.code != 0 || second.stdout == "" || second.stdout != third.stdout {
		t.Fatalf("multiplexed sessions: %+v and %+v (first: %s)", second, third, stderr.String())
	}
	direct := ts.ssh(t, "", target, `echo "$SSH_CONNECTION"`)
	if direct.stdout == second.stdout {
		t.Fatalf("a separate connection reports the same SSH_CONNECTION %q", direct.stdout)
	}
	first()
	// ServerAliveCountMax=3 and a 1 s interval: the master dies if
	// keepalives go unanswered for about 4 s, within the 6 s session above
	// (a count of 1 failed on a loaded CI machine with a working server).
	if res := mux("", "-O", "check", target); res.code != 0 {
		t.Fatalf("-O check after keepalives: %+v", res)
	}

	host := echoServer(t, "tcp", "127.0.0.1:0")
	hostPort := host.Addr().(*net.TCPAddr).Port
	dynSpec := fmt.Sprintf("0:127.0.0.1:%d", hostPort)
	dyn := mux("", "-O", "forward", "-R", dynSpec, target)
	port, err := strconv.Atoi(strings.TrimSpace(dyn.stdout))
	if dyn.code != 0 || err != nil || port <= 0 {
		t.Fatalf("-O forward -R %s: %+v", dynSpec, dyn)
	}
	dynAddr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, "dynamic remote forward", forwardWorks("tcp", dynAddr))

	fixed := freePort(t)
	fixedSpec := fmt.Sprintf("%d:127.0.0.1:%d", fixed, hostPort)
	fixedAddr := fmt.Sprintf("127.0.0.1:%d", fixed)
	if res := mux("", "-O", "forward", "-R", fixedSpec, target); res.code != 0 {
		t.Fatalf("-O forward -R %s: %+v", fixedSpec, res)
	}
	waitFor(t, "fixed remote forward", forwardWorks("tcp", fixedAddr))

	dir := t.TempDir()
	hostSock := filepath.Join(dir, "host.sock")
	echoServer(t, "unix", hostSock)
	kept, cancelled := filepath.Join(dir, "kept.sock"), filepath.Join(dir, "cancelled.sock")
	for _, sock := range []string{kept, cancelled} {
		if res := mux("", "-O", "forward", "-R", sock+":"+hostSock, target); res.code != 0 {
			t.Fatalf("-O forward unix: %+v", res)
		}
		waitFor(t, "unix forward", forwardWorks("unix", sock))
	}

	// Cancel the dynamic forward, the fixed one and one Unix socket.
	for _, spec := range []string{dynSpec, fixedSpec, cancelled + ":" + hostSock} {
		if res := mux("", "-O", "cancel", "-R", spec, target); res.code != 0 {
			t.Fatalf("-O cancel -R %s: %+v", spec, res)
		}
	}
	waitFor(t, "cancelled dynamic forward closed", refused("tcp", dynAddr))
	waitFor(t, "cancelled fixed forward closed", refused("tcp", fixedAddr))
	waitFor(t, "cancelled unix forward removed", func() error { return gone(cancelled) })

	// The other Unix forward is still up; -O exit ends the connection and it.
	if err := forwardWorks("unix", kept)(); err != nil {
		t.Fatalf("unix forward after the cancels: %v", err)
	}
	if res := mux("", "-O", "exit", target); res.code != 0 {
		t.Fatalf("-O exit: %+v", res)
	}
	waitFor(t, "forwards closed after -O exit", func() error { return gone(kept) })
	if res := mux("", "-O", "check", target); res.code == 0 {
		t.Fatalf("-O check after -O exit: %+v", res)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind in the sockets' folder: %v", entries)
	}
}

// TestRemoteForwardLimitAndRequests uses x/crypto's client: the number of
// forwards per connection is bounded, cancel frees a slot, the origin of a
// forwarded connection is reported, and unknown requests get a failure.
func TestRemoteForwardLimitAndRequests(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.goClient(t)
	for _, typ := range []string{"keepalive@openssh.com", "banger-unknown@example.com"} {
		ok, _, err := c.SendRequest(typ, true, nil)
		if ok || err != nil {
			t.Errorf("%s: ok=%v err=%v, want a failure reply", typ, ok, err)
		}
	}
	if _, err := c.Listen("tcp", "0.0.0.0:0"); err == nil {
		t.Fatal("wildcard remote forward accepted")
	}
	var lns []net.Listener
	for i := 0; i < maxListeners; i++ {
		ln, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("forward %d: %v", i+1, err)
		}
		lns = append(lns, ln)
	}
	if ln, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
		t.Fatalf("forward %d accepted beyond the limit", maxListeners+1)
	}
	ok, _, err := c.SendRequest(reqStreamLocalForward, true, ssh.Marshal(streamLocalForward{Path: filepath.Join(t.TempDir(), "s")}))
	if ok || err != nil {
		t.Fatalf("unix forward beyond the limit: ok=%v err=%v", ok, err)
	}
	// Closing one (cancel-tcpip-forward) frees a slot.
	lns[0].Close()
	var ln net.Listener
	waitFor(t, "a forward after a cancel", func() error {
		var err error
		ln, err = c.Listen("tcp", "127.0.0.1:0")
		return err
	})
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
		}
		close(accepted)
	}()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer dialed.Close()
	conn, ok := <-accepted
	if !ok {
		t.Fatal("no forwarded connection")
	}
	defer conn.Close()
	if got, want := conn.RemoteAddr().String(), dialed.LocalAddr().String(); got != want {
		t.Errorf("forwarded connection's origin %s, want %s", got, want)
	}
	fmt.Fprintf(dialed, "ping\n")
	buf := make([]byte, 5)
	if _, err := conn.Read(buf); err != nil || string(buf) != "ping\n" {
		t.Errorf("read through forward: %q %v", buf, err)
	}

	if ok, _, err := c.SendRequest(reqNoMoreSessions, false, nil); ok || err != nil {
		t.Fatalf("no-more-sessions: ok=%v err=%v", ok, err)
	}
	waitFor(t, "sessions refused after no-more-sessions", func() error {
		sess, err := c.NewSession()
		if err == nil {
			sess.Close()
			return fmt.Errorf("session opened after no-more-sessions")
		}
		return nil
	})
}
