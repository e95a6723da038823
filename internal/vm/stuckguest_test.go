package vm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/guest/agenttest"
	"banger/internal/model"

	"golang.org/x/crypto/ssh"
)

// addFakeVM records a running user-mode VM whose agent is a fake.
func addFakeVM(t *testing.T, m *Manager, name string, opts agenttest.Options) {
	t.Helper()
	a := agenttest.Start(t, m.signer.PublicKey(), opts)
	_, port, _ := net.SplitHostPort(a.Addr)
	pn, _ := strconv.Atoi(port)
	vm := model.VMRecord{ID: name + "-id", Name: name, State: model.VMRunning, ImageID: "img1", Network: "user",
		SSHPort: pn, SSHHostKey: a.HostKey, Dir: t.TempDir(), CreatedAt: time.Now()}
	if err := m.store.InsertVM(context.Background(), vm); err != nil {
		t.Fatal(err)
	}
}

// healthyAgent answers every request like a healthy agent.
func healthyAgent(w io.Writer, req []byte, _ <-chan struct{}) {
	var r proto.Request
	json.Unmarshal(req, &r)
	var res any
	switch r.Op {
	case proto.OpHealth:
		res = proto.Health{OK: true, TimeUnixNano: time.Now().UnixNano(), Checks: []proto.Check{{Name: proto.CheckAgent, OK: true}}}
	case proto.OpPorts:
		res = []api.VMPort{{Proto: "tcp", BindAddress: "0.0.0.0", Port: 8080, Process: "web"}}
	}
	raw, _ := json.Marshal(res)
	line, _ := json.Marshal(proto.Response{OK: true, Result: raw})
	w.Write(append(line, '\n'))
}

// The guest service (package guest) reaches these VMs through the manager
// (guest.Resolver).

// TestStuckGuestDoesNotBlockOthers: while one guest holds a health
// request (it never answers), requests about another VM, and reads about
// the stuck one, are answered.
func TestStuckGuestDoesNotBlockOthers(t *testing.T) {
	m, _, _ := newTestManager(t, &fakeBackend{})
	g := guest.NewService(m, m.signer)
	g.CallTimeout = time.Hour // the stuck call stays stuck for the whole test
	got := make(chan struct{}, 8)
	addFakeVM(t, m, "stuck", agenttest.Options{Handle: func(w io.Writer, req []byte, stop <-chan struct{}) {
		got <- struct{}{}
		<-stop
	}})
	addFakeVM(t, m, "fine", agenttest.Options{Handle: healthyAgent})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Health(ctx, "stuck")
	}()
	go g.Ports(ctx, "stuck")
	<-got // the stuck guest holds a request now
	<-got

	res, err := g.Health(testCtx(t), "fine")
	if err != nil || !res.Healthy {
		t.Fatalf("health of another vm while one is stuck: %+v, %v", res, err)
	}
	ports, err := g.Ports(testCtx(t), "fine")
	if err != nil || len(ports.Ports) != 1 {
		t.Fatalf("ports of another vm while one is stuck: %+v, %v", ports, err)
	}
	if _, err := m.List(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if vm, err := m.Show(testCtx(t), "stuck"); err != nil || vm.State != model.VMRunning {
		t.Fatalf("show the stuck vm: %+v, %v", vm, err)
	}
	select {
	case <-done:
		t.Fatal("the stuck guest's health call returned on its own")
	default:
	}
	cancel() // the caller giving up ends the stuck call
	<-done
}

// TestStuckGuestTimesOut: a guest that never answers gets a clear
// unhealthy result and an unavailable error once the deadline passes.
func TestStuckGuestTimesOut(t *testing.T) {
	m, _, _ := newTestManager(t, &fakeBackend{})
	g := guest.NewService(m, m.signer)
	g.CallTimeout = 200 * time.Millisecond
	addFakeVM(t, m, "stuck", agenttest.Options{Handle: agenttest.Never})
	res, err := g.Health(context.Background(), "stuck")
	if err != nil || res.Healthy || len(res.Checks) != 1 || !strings.Contains(res.Checks[0].Detail, "no answer from the guest within 200ms") {
		t.Fatalf("health of a stuck guest: %+v, %v", res, err)
	}
	_, err = g.Ports(context.Background(), "stuck")
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), `ports of vm "stuck"`) {
		t.Fatalf("ports of a stuck guest: %v", err)
	}
	key := string(ssh.MarshalAuthorizedKey(m.signer.PublicKey()))
	_, err = g.AuthorizeKey(context.Background(), api.VMAuthorizeKeyParams{IDOrName: "stuck", PublicKey: key})
	if !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("authorize-key on a stuck guest: %v", err)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
