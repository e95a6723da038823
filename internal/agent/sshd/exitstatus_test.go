package sshd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestExitStatusBeforeEOF: the exit status reaches the client before the
// channel's EOF, so a client that closes the channel as soon as EOF went
// both ways (OpenSSH does, a ControlMaster included) still gets it.
// x/crypto's client handles a connection's packets in order and queues a
// channel request before it handles a later EOF, so when the read of
// stdout ends the status must already be waiting.
func TestExitStatusBeforeEOF(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.goClient(t)
	cases := []struct {
		cmd    string
		req    string // "exit-status" or "exit-signal"
		status uint32
		signal string
	}{
		{cmd: "echo out; echo err >&2", req: "exit-status", status: 0},
		{cmd: "echo out; echo err >&2; exit 3", req: "exit-status", status: 3},
		{cmd: "echo out; echo err >&2; kill -TERM $$", req: "exit-signal", signal: "TERM"},
	}
	for i := 0; i < 30; i++ {
		tc := cases[i%len(cases)]
		ch, reqs, err := c.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Value string }{tc.cmd}))
		if err != nil || !ok {
			t.Fatalf("exec %q: %v %v", tc.cmd, ok, err)
		}
		ch.CloseWrite() // no input, like ssh with stdin at EOF
		var stderr bytes.Buffer
		errDone := make(chan struct{})
		go func() { io.Copy(&stderr, ch.Stderr()); close(errDone) }()
		out, err := io.ReadAll(ch)
		if err != nil || string(out) != "out\n" {
			t.Fatalf("%q: stdout %q %v", tc.cmd, out, err)
		}
		<-errDone
		if stderr.String() != "err\n" {
			t.Fatalf("%q: stderr %q", tc.cmd, stderr.String())
		}
		var req *ssh.Request
		select {
		case req = <-reqs:
		default:
			t.Fatalf("run %d, %q: EOF came before the exit status", i, tc.cmd)
		}
		ch.Close() // what OpenSSH does once EOF went both ways
		if got := describeExit(req); got != describeWant(tc.req, tc.status, tc.signal) {
			t.Fatalf("%q: got %s, want %s", tc.cmd, got, describeWant(tc.req, tc.status, tc.signal))
		}
		for r := range reqs {
			t.Errorf("%q: request %q after the exit status", tc.cmd, r.Type)
		}
	}
}

// describeExit renders an exit-status or exit-signal request.
func describeExit(req *ssh.Request) string {
	switch req.Type {
	case "exit-status":
		if len(req.Payload) == 4 {
			return fmt.Sprintf("exit-status %d", binary.BigEndian.Uint32(req.Payload))
		}
	case "exit-signal":
		var sig struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}
		if ssh.Unmarshal(req.Payload, &sig) == nil {
			return "exit-signal " + sig.Signal
		}
	}
	return fmt.Sprintf("%s %x", req.Type, req.Payload)
}

func describeWant(typ string, status uint32, signal string) string {
	if typ == "exit-signal" {
		return "exit-signal " + signal
	}
	return fmt.Sprintf("exit-status %d", status)
}
