package sshd

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"banger/internal/agent/proto"
)

// pipeRW is the host's end of a watch: it reads snapshots, and closing
// the write side ends the watch.
type pipeRW struct {
	io.Reader
	io.Writer
}

func TestWatchPortsSendsASnapshotAtOnceAndOnEveryChange(t *testing.T) {
	root := writeFakeProc(t)
	s := &server{sys: sysPaths{procRoot: root}}
	fromAgent, agentOut := io.Pipe()
	hostIn, toAgent := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- s.watchPorts(pipeRW{hostIn, agentOut}) }()
	sc := bufio.NewScanner(fromAgent)
	next := func() proto.ListenSnapshot {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("no snapshot: %v", sc.Err())
		}
		var snap proto.ListenSnapshot
		if err := json.Unmarshal(sc.Bytes(), &snap); err != nil {
			t.Fatal(err)
		}
		return snap
	}
	want := []proto.Listener{{BindAddress: "0.0.0.0", Port: 22}, {BindAddress: "::1", Port: 5432}, {BindAddress: "127.0.0.1", Port: 8080}}
	if got := next().Listeners; !reflect.DeepEqual(got, want) {
		t.Fatalf("first snapshot %+v, want %+v (TCP listeners only)", got, want)
	}
	// A new listener on 3000 appears.
	tcp := filepath.Join(root, "net/tcp")
	b, _ := os.ReadFile(tcp)
	b = append(b, "   3: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1009 1 0 100 0 0 10 0\n"...)
	if err := os.WriteFile(tcp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	want = append([]proto.Listener{{BindAddress: "0.0.0.0", Port: 22}, {BindAddress: "127.0.0.1", Port: 3000}}, want[1:]...)
	if got := next().Listeners; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the change %+v, want %+v", got, want)
	}
	toAgent.Close()
	go io.Copy(io.Discard, fromAgent)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end when the host closed its side")
	}
}
