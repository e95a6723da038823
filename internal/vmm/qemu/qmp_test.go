package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const greeting = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`

type qmpRequest struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        json.RawMessage `json:"id"`
}

// fakeQMP serves one connection: it sends hello, then for each request
// writes whatever reply returns (nothing when it returns no lines; a nil
// slice closes the connection). It records the requests it got.
type fakeQMP struct {
	path string
	mu   sync.Mutex
	reqs []qmpRequest
}

func newFakeQMP(t *testing.T, hello string, reply func(req qmpRequest) []string) *fakeQMP {
	t.Helper()
	f := &fakeQMP{path: filepath.Join(t.TempDir(), "qmp.sock")}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		w := bufio.NewWriter(conn)
		send := func(lines ...string) {
			for _, l := range lines {
				w.WriteString(l + "\r\n")
			}
			w.Flush()
		}
		send(hello)
		dec := json.NewDecoder(conn)
		for {
			var req qmpRequest
			if err := dec.Decode(&req); err != nil {
				return
			}
			f.mu.Lock()
			f.reqs = append(f.reqs, req)
			f.mu.Unlock()
			lines := reply(req)
			if lines == nil {
				return
			}
			send(lines...)
		}
	}()
	return f
}

func (f *fakeQMP) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var cmds []string
	for _, r := range f.reqs {
		cmds = append(cmds, r.Execute)
	}
	return cmds
}

// ok answers every command with an empty return carrying its id.
func ok(req qmpRequest) []string {
	return []string{`{"return": {}, "id": ` + string(req.ID) + `}`}
}

func dial(t *testing.T, f *fakeQMP) *QMP {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialQMP(ctx, f.path)
	if err != nil {
		t.Fatalf("DialQMP: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestQMPQueryStatusSkipsEventsAndStaleReplies(t *testing.T) {
	f := newFakeQMP(t, greeting, func(req qmpRequest) []string {
		if req.Execute != "query-status" {
			return ok(req)
		}
		return []string{
			`{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}`,
			`{"return": {"status": "stale", "running": false}, "id": "old"}`,
			`{"return": {"status": "paused", "singlestep": false, "running": false}, "id": ` + string(req.ID) + `}`,
		}
	})
	c := dial(t, f)
	s, err := c.QueryStatus(context.Background())
	if err != nil {
		t.Fatalf("QueryStatus: %v", err)
	}
	if s.Status != "paused" || s.Running {
		t.Errorf("status = %+v, want paused, not running", s)
	}
	if got := f.commands(); len(got) != 2 || got[0] != "qmp_capabilities" || got[1] != "query-status" {
		t.Errorf("commands sent = %q, want qmp_capabilities then query-status", got)
	}
}

func TestQMPExecuteArgumentsAndError(t *testing.T) {
	f := newFakeQMP(t, greeting, func(req qmpRequest) []string {
		if req.Execute == "human-monitor-command" {
			return []string{`{"error": {"class": "GenericError", "desc": "no such thing"}, "id": ` + string(req.ID) + `}`}
		}
		return ok(req)
	})
	c := dial(t, f)
	err := c.Execute(context.Background(), "human-monitor-command", map[string]string{"command-line": "info x"}, nil)
	var qe *QMPError
	if !errors.As(err, &qe) {
		t.Fatalf("Execute error = %v, want *QMPError", err)
	}
	if qe.Class != "GenericError" || qe.Desc != "no such thing" || qe.Command != "human-monitor-command" {
		t.Errorf("QMPError = %+v", qe)
	}
	if err := c.SystemPowerdown(context.Background()); err != nil {
		t.Errorf("SystemPowerdown after an error reply: %v", err)
	}
	f.mu.Lock()
	args := string(f.reqs[1].Arguments)
	noArgs := f.reqs[2].Arguments
	f.mu.Unlock()
	if args != `{"command-line":"info x"}` {
		t.Errorf("arguments sent = %s", args)
	}
	if noArgs != nil {
		t.Errorf("system_powerdown sent arguments %s, want none", noArgs)
	}
}

func TestQMPRejectsNonQMPServer(t *testing.T) {
	f := newFakeQMP(t, `{"hello": "world"}`, ok)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := DialQMP(ctx, f.path); err == nil {
		c.Close()
		t.Fatal("DialQMP accepted a server without a QMP greeting")
	}
}

func TestQMPCapabilitiesRefused(t *testing.T) {
	f := newFakeQMP(t, greeting, func(req qmpRequest) []string {
		return []string{`{"error": {"class": "CommandNotFound", "desc": "nope"}}`}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := DialQMP(ctx, f.path)
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Command != "qmp_capabilities" {
		t.Fatalf("DialQMP error = %v, want a qmp_capabilities QMPError", err)
	}
}

func TestQMPQuitConnectionClosed(t *testing.T) {
	f := newFakeQMP(t, greeting, func(req qmpRequest) []string {
		if req.Execute == "quit" {
			return nil // QEMU may exit before it answers
		}
		return ok(req)
	})
	c := dial(t, f)
	if err := c.Quit(context.Background()); err != nil {
		t.Fatalf("Quit: %v", err)
	}
}

func TestQMPContextDeadline(t *testing.T) {
	f := newFakeQMP(t, greeting, func(req qmpRequest) []string {
		if req.Execute == "query-status" {
			return []string{} // never answer
		}
		return ok(req)
	})
	c := dial(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.QueryStatus(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("QueryStatus error = %v, want deadline exceeded", err)
	}
}

func TestQMPContextCancel(t *testing.T) {
	f := newFakeQMP(t, greeting, func(req qmpRequest) []string {
		if req.Execute == "query-status" {
			return []string{}
		}
		return ok(req)
	})
	c := dial(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := c.QueryStatus(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("QueryStatus error = %v, want canceled", err)
	}
}

func TestDialQMPNoSocket(t *testing.T) {
	if _, err := DialQMP(context.Background(), filepath.Join(t.TempDir(), "none.sock")); err == nil {
		t.Fatal("DialQMP succeeded without a socket")
	}
}
