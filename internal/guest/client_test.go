package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"banger/internal/agent/proto"
	"banger/internal/agent/sshd"
)

// guestServer is the real agent SSH server on a loopback port.
type guestServer struct {
	addr    string
	hostPub string
	signer  ssh.Signer
	root    string
	work    string
}

func startGuest(t *testing.T) *guestServer {
	t.Helper()
	hostPEM, hostPub, err := GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := LoadOrCreateSigner(filepath.Join(t.TempDir(), "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &guestServer{addr: ln.Addr().String(), hostPub: hostPub, signer: signer, root: t.TempDir(), work: t.TempDir()}
	cfg := sshd.Config{
		HostKey:        hostPEM,
		AuthorizedKeys: []string{authorizedLine(signer.PublicKey())},
		Disks:          sshd.DiskPaths{Root: g.root, Work: g.work},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sshd.Serve(ctx, ln, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return g
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (g *guestServer) dial(t *testing.T) *Client {
	t.Helper()
	c, err := Dial(testCtx(t), g.addr, g.signer, g.hostPub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestHealth(t *testing.T) {
	g := startGuest(t)
	c := g.dial(t)
	h, err := c.Health(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !h.OK {
		t.Fatalf("health not OK: %+v", h)
	}
	names := map[string]bool{}
	for _, ch := range h.Checks {
		names[ch.Name] = ch.OK
	}
	for _, want := range []string{proto.CheckAgent, proto.CheckRootWritable, proto.CheckWorkWritable, proto.CheckClock} {
		if !names[want] {
			t.Errorf("check %s missing or failing in %+v", want, h.Checks)
		}
	}
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	du, err := c.DiskUsage(testCtx(t))
	if err != nil || du.Work.Path != g.work || du.Root.SizeBytes == 0 {
		t.Fatalf("disk usage %+v, %v", du, err)
	}
	if err := c.Poweroff(testCtx(t)); err == nil || !strings.Contains(err.Error(), "poweroff is not available") {
		t.Fatalf("poweroff without a callback: %v", err)
	}
	// The agent here would set this machine's clock, so only a time it
	// refuses goes over the wire (the e2e tests set a guest's clock).
	if err := c.SetTime(testCtx(t), time.Unix(1000, 0)); err == nil || !strings.Contains(err.Error(), "set_time: refusing to set the clock") {
		t.Fatalf("set_time to 1970: %v", err)
	}
}

func TestPorts(t *testing.T) {
	g := startGuest(t)
	c := g.dial(t)
	wild, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wild.Close()
	loop, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	ports, err := c.Ports(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	find := func(proto string, port int) (bind, process string, pid int) {
		for _, p := range ports {
			if p.Proto == proto && p.Port == port {
				return p.BindAddress, p.Process, p.PID
			}
		}
		t.Fatalf("%s port %d not in %+v", proto, port, ports)
		return "", "", 0
	}
	bind, process, pid := find("tcp", wild.Addr().(*net.TCPAddr).Port)
	if bind != "0.0.0.0" || process != strings.TrimSpace(string(comm)) || pid != os.Getpid() {
		t.Errorf("wildcard listener: bind %q process %q pid %d", bind, process, pid)
	}
	if bind, _, _ := find("tcp", loop.Addr().(*net.TCPAddr).Port); bind != "127.0.0.1" {
		t.Errorf("loopback listener has bind address %q", bind)
	}
	if bind, _, pid := find("udp", udp.LocalAddr().(*net.UDPAddr).Port); bind != "127.0.0.1" || pid != os.Getpid() {
		t.Errorf("udp socket: bind %q pid %d", bind, pid)
	}
}

func TestRun(t *testing.T) {
	g := startGuest(t)
	c := g.dial(t)
	var out, errb bytes.Buffer
	code, err := c.Run(testCtx(t), "cat; echo oops >&2; exit 5", strings.NewReader("input"), &out, &errb)
	if err != nil || code != 5 || out.String() != "input" || errb.String() != "oops\n" {
		t.Fatalf("run: code %d err %v stdout %q stderr %q", code, err, out.String(), errb.String())
	}
	code, err = c.Run(testCtx(t), "kill -TERM $$", nil, nil, nil)
	if err != nil || code != 128+15 {
		t.Fatalf("killed command: code %d err %v, want 143", code, err)
	}
	code, err = c.Run(testCtx(t), "no-such-command-banger", nil, nil, nil)
	if err != nil || code != 127 {
		t.Fatalf("missing command: code %d err %v, want 127", code, err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, err := c.Run(ctx, "sleep 100", nil, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
}

func TestAuthorizeKey(t *testing.T) {
	g := startGuest(t)
	c := g.dial(t)
	other, err := LoadOrCreateSigner(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(testCtx(t), g.addr, other, g.hostPub); err == nil {
		t.Fatal("an unauthorized key logged in")
	}
	if err := c.AuthorizeKey(testCtx(t), "ssh-ed25519 not-base64"); err == nil {
		t.Fatal("a garbled key was accepted")
	}
	if err := c.AuthorizeKey(testCtx(t), authorizedLine(other.PublicKey())); err != nil {
		t.Fatal(err)
	}
	c2, err := Dial(testCtx(t), g.addr, other, g.hostPub)
	if err != nil {
		t.Fatalf("authorized key refused: %v", err)
	}
	c2.Close()
}

func TestDialRefusesChangedHostKey(t *testing.T) {
	g := startGuest(t)
	_, otherPub, err := GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(testCtx(t), g.addr, g.signer, otherPub)
	var hk *HostKeyError
	if !errors.As(err, &hk) || !strings.Contains(err.Error(), "host key changed") {
		t.Fatalf("dial with a changed host key: %v", err)
	}
	// WaitReady gives up at once instead of retrying until the deadline.
	start := time.Now()
	_, err = WaitReady(testCtx(t), g.addr, g.signer, otherPub)
	if !errors.As(err, &hk) {
		t.Fatalf("WaitReady with a changed host key: %v (after %v)", err, time.Since(start))
	}
	if _, err := Dial(testCtx(t), g.addr, g.signer, "garbage"); err == nil {
		t.Fatal("a garbled pinned key was accepted")
	}
}

func TestWaitReady(t *testing.T) {
	// A port nobody listens on yet: WaitReady fails with the last error.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	signer, _ := LoadOrCreateSigner(filepath.Join(t.TempDir(), "k"))
	_, pub, _ := GenerateHostKey()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = WaitReady(ctx, addr, signer, pub)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("WaitReady on a closed port: %v", err)
	}

	g := startGuest(t)
	c, err := WaitReady(testCtx(t), g.addr, g.signer, g.hostPub)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(fmt.Errorf("ping after WaitReady: %w", err))
	}
}

func TestClockSkew(t *testing.T) {
	sent := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name             string
		out, work, back  time.Duration
		guestAhead, want time.Duration
	}{
		{"in sync, fast", 5 * time.Millisecond, 0, 5 * time.Millisecond, 0, 0},
		{"slow checks do not count", 20 * time.Millisecond, 3 * time.Second, 20 * time.Millisecond, 0, 0},
		{"guest behind", 50 * time.Millisecond, time.Second, 50 * time.Millisecond, -700 * time.Millisecond, -700 * time.Millisecond},
		{"guest ahead", 10 * time.Millisecond, 400 * time.Millisecond, 10 * time.Millisecond, 2 * time.Second, 2 * time.Second},
		// Asymmetric paths: the error is half the difference.
		{"asymmetric", 100 * time.Millisecond, 0, 0, 0, 50 * time.Millisecond},
	} {
		read := sent.Add(tc.out)
		rt := roundTrip{sent: sent, received: read.Add(tc.work + tc.back)}
		h := proto.Health{TimeUnixNano: read.Add(tc.guestAhead).UnixNano(), ElapsedNanos: int64(tc.work)}
		if got := clockSkew(rt, h); got != tc.want {
			t.Errorf("%s: skew %v, want %v", tc.name, got, tc.want)
		}
	}
	// A bogus elapsed time from the guest cannot push the estimate outside
	// the round trip.
	rt := roundTrip{sent: sent, received: sent.Add(time.Second)}
	for _, elapsed := range []time.Duration{-time.Hour, time.Hour} {
		h := proto.Health{TimeUnixNano: sent.UnixNano(), ElapsedNanos: int64(elapsed)}
		if got := clockSkew(rt, h); got > 0 || got < -time.Second {
			t.Errorf("elapsed %v: skew %v outside the round trip", elapsed, got)
		}
	}
}
