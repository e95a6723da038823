package vm

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/guest/agenttest"
	"banger/internal/paths"
	"banger/internal/vmm"
)

// A guest whose agent answers on the control port is ready without an SSH
// login (its SSH server here accepts connections but never answers), and
// its clock is set over the control port.
func TestStartReadyOverControlPort(t *testing.T) {
	m, _, n, _ := newFakeManager(t, &fakeBackend{console: "banger-init: stage 1 started\n"})
	vm := addStoppedVM(t, m, n, "ctl")
	// Replace the healthy SSH agent with one that never answers.
	a := agenttest.Start(t, m.signer.PublicKey(), agenttest.Options{Handle: agenttest.Never})
	_, port, _ := net.SplitHostPort(a.Addr)
	n.sshPort, _ = strconv.Atoi(port)

	var mu sync.Mutex
	var ops []string
	ln, err := net.Listen("unix", filepath.Join(vm.Dir, paths.VMRunDir, vmm.ControlSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				time.Sleep(100 * time.Millisecond) // the agent opens the port later
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					var r proto.Request
					json.Unmarshal(sc.Bytes(), &r)
					mu.Lock()
					ops = append(ops, r.Op)
					mu.Unlock()
					healthyAgent(c, sc.Bytes(), nil)
				}
			}()
		}
	}()
	started := time.Now()
	startVM(t, m, "ctl")
	if took := time.Since(started); took > controlGrace {
		t.Fatalf("start took %s: the SSH fallback ran", took)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ops) != 2 || ops[0] != proto.OpHealth || ops[1] != proto.OpSetTime {
		t.Fatalf("control port requests %v, want health then set_time", ops)
	}
}

// A control port that never answers (an agent without it, a port the guest
// never opens) falls back to the SSH check once the grace period passes.
func TestStartFallsBackToSSHWhenControlPortSilent(t *testing.T) {
	old := controlGrace
	controlGrace = 300 * time.Millisecond
	defer func() { controlGrace = old }()
	m, _, n, _ := newFakeManager(t, &fakeBackend{console: "banger-init: stage 1 started\n"})
	vm := addStoppedVM(t, m, n, "silent") // its SSH agent is healthy
	ln, err := net.Listen("unix", filepath.Join(vm.Dir, paths.VMRunDir, vmm.ControlSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answered
		}
	}()
	started := time.Now()
	startVM(t, m, "silent")
	if took := time.Since(started); took < controlGrace {
		t.Fatalf("ready after %s, before the grace period: the silent control port was not waited for", took)
	}
}
