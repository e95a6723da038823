package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/guest/agenttest"
)

// dialFake logs in to a fake agent; every call gets a short deadline.
func dialFake(t *testing.T, opts agenttest.Options) *Client {
	t.Helper()
	signer, err := LoadOrCreateSigner(filepath.Join(t.TempDir(), "id"))
	if err != nil {
		t.Fatal(err)
	}
	a := agenttest.Start(t, signer.PublicKey(), opts)
	c, err := Dial(testCtx(t), a.Addr, signer, a.HostKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.CallTimeout = 200 * time.Millisecond
	return c
}

// agentCalls are every agent round trip, run without a deadline of their own.
var agentCalls = map[string]func(*Client) error{
	"ping":      func(c *Client) error { return c.Ping(context.Background()) },
	"health":    func(c *Client) error { _, err := c.Health(context.Background()); return err },
	"ports":     func(c *Client) error { _, err := c.Ports(context.Background()); return err },
	"authorize": func(c *Client) error { return c.AuthorizeKey(context.Background(), "ssh-ed25519 AAAA") },
	"set_time":  func(c *Client) error { return c.SetTime(context.Background(), time.Now()) },
	"disk":      func(c *Client) error { _, err := c.DiskUsage(context.Background()); return err },
	"poweroff":  func(c *Client) error { return c.Poweroff(context.Background()) },
	"run start": func(c *Client) error { _, err := c.Run(context.Background(), "true", nil, nil, nil); return err },
}

func wantTimeout(t *testing.T, what string, err error) {
	t.Helper()
	var te *TimeoutError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &te) || !strings.Contains(err.Error(), "no answer from the guest within 200ms") {
		t.Errorf("%s: got %v, want a timeout error", what, err)
	}
}

// TestSilentAgentTimesOut: an agent that accepts a request and never
// answers cannot hold any call past its deadline.
func TestSilentAgentTimesOut(t *testing.T) {
	for name, call := range agentCalls {
		if name == "run start" {
			continue // the fake answers no exec request (refuses it)
		}
		c := dialFake(t, agenttest.Options{Handle: agenttest.Never})
		wantTimeout(t, name, call(c))
	}
}

// TestHeldChannelTimesOut: a guest that never confirms a channel open
// (the step before any request is sent) is bounded as well.
func TestHeldChannelTimesOut(t *testing.T) {
	for name, call := range agentCalls {
		c := dialFake(t, agenttest.Options{HoldChannels: true})
		wantTimeout(t, name, call(c))
	}
}

// TestCallerDeadlineWins: a caller's shorter deadline applies.
func TestCallerDeadlineWins(t *testing.T) {
	c := dialFake(t, agenttest.Options{Handle: agenttest.Never})
	c.CallTimeout = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ping with a 100ms context: %v", err)
	}
}

// reply answers every request with one fixed line.
func reply(line string) agenttest.Handler {
	return func(w io.Writer, _ []byte, _ <-chan struct{}) { io.WriteString(w, line+"\n") }
}

func okResult(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(proto.Response{OK: true, Result: raw})
	return string(line)
}

// TestReplyLineBounded: an endless reply line is refused once it passes
// MaxReplyBytes, without waiting for its end.
func TestReplyLineBounded(t *testing.T) {
	c := dialFake(t, agenttest.Options{Handle: func(w io.Writer, _ []byte, stop <-chan struct{}) {
		chunk := []byte(strings.Repeat("a", 64<<10))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}})
	c.CallTimeout = time.Minute
	err := c.Ping(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("longer than %d bytes", MaxReplyBytes)) {
		t.Fatalf("ping with an endless reply: %v", err)
	}
}

// TestAgentMessagesBounded: error messages and check details are cut to
// MaxMessageBytes; over-long names and too many entries are refused.
func TestAgentMessagesBounded(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	line, _ := json.Marshal(proto.Response{OK: false, Error: long})
	err := dialFake(t, agenttest.Options{Handle: reply(string(line))}).Ping(testCtx(t))
	if err == nil || len(err.Error()) > MaxMessageBytes+64 || !strings.HasSuffix(err.Error(), "… (cut)") {
		t.Fatalf("long agent error: %d bytes", len(err.Error()))
	}

	h := proto.Health{Checks: []proto.Check{{Name: "agent", OK: true, Detail: long}}}
	got, err := dialFake(t, agenttest.Options{Handle: reply(okResult(t, h))}).Health(testCtx(t))
	if err != nil || len(got.Checks) != 1 || len(got.Checks[0].Detail) > MaxMessageBytes {
		t.Fatalf("long check detail: %v (%d checks)", err, len(got.Checks))
	}
	h = proto.Health{Checks: make([]proto.Check, MaxChecks+1)}
	if _, err := dialFake(t, agenttest.Options{Handle: reply(okResult(t, h))}).Health(testCtx(t)); err == nil || !strings.Contains(err.Error(), "checks, more than") {
		t.Fatalf("too many checks: %v", err)
	}
	h = proto.Health{Checks: []proto.Check{{Name: long}}}
	if _, err := dialFake(t, agenttest.Options{Handle: reply(okResult(t, h))}).Health(testCtx(t)); err == nil || !strings.Contains(err.Error(), "name of") {
		t.Fatalf("long check name: %v", err)
	}
}

func TestPortsBounded(t *testing.T) {
	ports := func(ps []api.VMPort) ([]api.VMPort, error) {
		return dialFake(t, agenttest.Options{Handle: reply(okResult(t, ps))}).Ports(testCtx(t))
	}
	// A hostile but bounded name passes through raw (the CLI escapes it
	// for the terminal; --json keeps it).
	evil := "\x1b]0;owned\x07nginx"
	got, err := ports([]api.VMPort{{Proto: "tcp", BindAddress: "0.0.0.0", Port: 80, PID: 7, Process: evil, Command: strings.Repeat("c", 10000)}})
	if err != nil || len(got) != 1 || got[0].Process != evil || len(got[0].Command) > MaxCommandBytes {
		t.Fatalf("ports: %v %+v", err, got)
	}
	for name, tc := range map[string]struct {
		ports []api.VMPort
		want  string
	}{
		"too many":      {make([]api.VMPort, MaxPorts+1), "more than the 4096"},
		"long process":  {[]api.VMPort{{Proto: "tcp", Port: 1, Process: strings.Repeat("p", MaxNameBytes+1)}}, "process name of"},
		"bad proto":     {[]api.VMPort{{Proto: "\x1b[2J", Port: 1}}, "unknown protocol"},
		"bad address":   {[]api.VMPort{{Proto: "tcp", BindAddress: "evil.example", Port: 1}}, "not an IP address"},
		"bad port":      {[]api.VMPort{{Proto: "udp", Port: 70000}}, "out of range"},
		"endpoint lies": {[]api.VMPort{{Proto: "tcp", Port: 1, Endpoint: "bank.example:443"}}, "may not set endpoints"},
	} {
		if _, err := ports(tc.ports); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
