package forward

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/network"
)

// guestServer stands for a server in the guest: it reads everything, then
// answers with what it read reversed in order of arrival (so the answer
// comes only after the client's half-close) and closes.
func guestServer(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
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
				b, _ := io.ReadAll(c)
				c.Write([]byte(fmt.Sprintf("%d:", len(b))))
				c.Write(b)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// roundTrip sends payload to addr, half-closes, and returns the answer.
// guestServerFreeOnHost starts guestServer on 127.0.0.2 (a guest's
// loopback stand-in) at a port that is also free on 127.0.0.1, where the
// forward of the same number listens. Other test binaries run at the same
// time and their ephemeral ports on 127.0.0.1 may share the number.
func guestServerFreeOnHost(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		gp := guestServer(t, "127.0.0.2:0")
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(gp)))
		if err == nil {
			ln.Close()
			return gp
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2 in 50 tries")
	return 0
}

func roundTrip(t *testing.T, addr string, payload []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	return got
}

func TestForwardCarriesBytesWithHalfCloseToGuestLoopback(t *testing.T) {
	r := newRig(t)
	vm := r.vm("dev", 1000)
	gp := guestServer(t, "127.0.0.1:0")
	hp := freePort(t)
	// The owner rule must be in place before anyone can connect.
	r.rules.check = func(o []network.PortOwner) {
		for _, po := range o {
			if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(po.Port)))); err == nil {
				c.Close()
				t.Errorf("port %d accepted a connection before its owner rule was installed", po.Port)
			}
		}
	}
	f, err := r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "dev", HostPort: hp, GuestPort: gp})
	if err != nil {
		t.Fatal(err)
	}
	if f.HostPort != hp || f.GuestPort != gp || len(f.HostAddrs) == 0 || f.HostAddrs[0] != "127.0.0.1" {
		t.Fatalf("forward %+v", f)
	}
	if got := r.rules.owners(); len(got) != 1 || got[0] != (network.PortOwner{Port: uint16(hp), UID: 1000}) {
		t.Fatalf("owner rules %v, want port %d for uid 1000", got, hp)
	}
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	got := roundTrip(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(hp)), payload)
	want := append([]byte(strconv.Itoa(len(payload))+":"), payload...)
	if !bytes.Equal(got, want) {
		t.Fatalf("answer of %d bytes differs from the %d expected", len(got), len(want))
	}
	if target := <-r.agents[vm.ID].opened; target != net.JoinHostPort("127.0.0.1", strconv.Itoa(gp)) {
		t.Errorf("agent asked for %s", target)
	}
}

func TestForwardManyConcurrentConnections(t *testing.T) {
	r := newRig(t)
	r.vm("dev", 1000)
	gp := guestServer(t, "127.0.0.1:0")
	hp := freePort(t)
	if _, err := r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "dev", HostPort: hp, GuestPort: gp}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []byte(strings.Repeat(strconv.Itoa(i), 1000))
			got := roundTrip(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(hp)), msg)
			if !bytes.Equal(got, append([]byte(strconv.Itoa(len(msg))+":"), msg...)) {
				t.Errorf("connection %d: wrong answer", i)
			}
		}()
	}
	wg.Wait()
}

func TestForwardBusyPortIsAConflictNamingTheHolder(t *testing.T) {
	r := newRig(t)
	r.vm("a", 1000)
	r.vm("b", 1000)
	r.vm("c", 2000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	_, err = r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "a", HostPort: busy, GuestPort: 80})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "a host process") {
		t.Fatalf("busy host port: %v, want a conflict naming a host process", err)
	}
	hp := freePort(t)
	if _, err := r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "a", HostPort: hp, GuestPort: 80}); err != nil {
		t.Fatal(err)
	}
	_, err = r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "b", HostPort: hp, GuestPort: 80})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), `vm "a"`) {
		t.Fatalf("port held by vm a: %v, want a conflict naming vm a", err)
	}
	_, err = r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "c", HostPort: hp, GuestPort: 80})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "another user's vm") || strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("port held by another user's vm: %v", err)
	}
	f, err := r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "b", HostPort: hp, GuestPort: 80, Remap: true})
	if err != nil || f.HostPort == hp || f.HostPort == 0 {
		t.Fatalf("remap: %+v %v, want another free port", f, err)
	}
}

func TestForwardRejectsBadInput(t *testing.T) {
	r := newRig(t)
	r.vm("a", 1000)
	for _, p := range []api.VMForwardParams{
		{IDOrName: "a", GuestPort: 0},
		{IDOrName: "a", GuestPort: 70000},
		{IDOrName: "a", HostAddr: "0.0.0.0", HostPort: 9999, GuestPort: 80},
		{IDOrName: "a", HostAddr: "192.168.1.1", HostPort: 9999, GuestPort: 80},
	} {
		_, err := r.m.Add(context.Background(), p)
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%+v: %v, want invalid", p, err)
		}
	}
	user := authz.WithCaller(context.Background(), authz.Caller{UID: 1000, GID: 1000})
	if _, err := r.m.Add(user, api.VMForwardParams{IDOrName: "a", HostPort: 80, GuestPort: 80}); !errors.Is(err, api.ErrPermission) {
		t.Errorf("privileged host port for a user: %v, want a permission error", err)
	}
	if got := r.rules.owners(); len(got) != 0 {
		t.Errorf("rules after refused forwards: %v", got)
	}
}

func TestForwardsPersistAndComeBack(t *testing.T) {
	r := newRig(t)
	dev := r.vm("dev", 1000)
	gp := guestServer(t, "127.0.0.1:0")
	hp := freePort(t)
	if _, err := r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "dev", HostPort: hp, GuestPort: gp}); err != nil {
		t.Fatal(err)
	}
	if of := r.m.Of(dev.ID); len(of) != 1 || of[0].HostPort != hp || of[0].GuestPort != gp {
		t.Fatalf("Of(dev): %+v, want the one forward %d to %d", of, hp, gp)
	}
	r.m.Close()
	if _, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))); err == nil {
		t.Fatal("the port still listens after Close")
	}
	r.m = r.manager()
	if err := r.m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(hp)), []byte("hi"))
	if string(got) != "2:hi" {
		t.Fatalf("after reload: %q", got)
	}
	if err := r.m.Remove(context.Background(), api.VMForwardRemoveParams{IDOrName: "dev", HostPort: hp}); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))); err == nil {
		c.Close()
		t.Fatal("the port still listens after Remove")
	}
	res, _ := r.m.List(context.Background(), "dev")
	if len(res.Forwards) != 0 || len(r.m.Of(dev.ID)) != 0 {
		t.Fatalf("list after remove: %+v, %+v", res, r.m.Of(dev.ID))
	}
}

func TestAutoModeFollowsTheAgentsSnapshots(t *testing.T) {
	r := newRig(t)
	vm := r.vm("dev", 1000)
	r.vm("other", 1000)
	// 127.0.0.2 plays the guest's loopback, so that the host port of the
	// same number on 127.0.0.1 is free.
	gp := guestServerFreeOnHost(t)
	// another VM holds the host port the second guest listener wants
	held := freePort(t)
	if _, err := r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "other", HostPort: held, GuestPort: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.m.SetMode(context.Background(), "dev", api.ForwardAuto, nil); err != nil {
		t.Fatal(err)
	}
	agent := r.agents[vm.ID]
	agent.snaps <- proto.ListenSnapshot{Listeners: []proto.Listener{
		{BindAddress: "0.0.0.0", Port: 22}, {BindAddress: "127.0.0.1", Port: 80}, {BindAddress: "0.0.0.0", Port: 5353},
		{BindAddress: "127.0.0.2", Port: gp}, {BindAddress: "127.0.0.2", Port: held},
	}}
	waitFor(t, "auto forward of the guest listener", func() bool {
		res, _ := r.m.List(context.Background(), "dev")
		return len(res.Forwards) == 2
	})
	res, _ := r.m.List(context.Background(), "dev")
	for _, f := range res.Forwards {
		switch f.GuestPort {
		case gp:
			if f.Conflict != "" || f.HostPort != gp || !f.Auto {
				t.Errorf("forward %+v", f)
			}
		case held:
			if !strings.Contains(f.Conflict, `vm "other"`) {
				t.Errorf("conflict %+v, want it to name vm other", f)
			}
		default:
			t.Errorf("unexpected auto forward %+v (ports below 1024, 22, 5353 are never forwarded)", f)
		}
	}
	if got := roundTrip(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(gp)), []byte("x")); string(got) != "1:x" {
		t.Fatalf("through the auto forward: %q", got)
	}
	agent.snaps <- proto.ListenSnapshot{}
	waitFor(t, "auto forward dropped", func() bool {
		res, _ := r.m.List(context.Background(), "dev")
		return len(res.Forwards) == 0
	})
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(gp))); err == nil {
		c.Close()
		t.Fatal("host port still listens after the guest listener went away")
	}
	for _, po := range r.rules.owners() {
		if int(po.Port) == gp {
			t.Errorf("owner rule for %d left behind", gp)
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestUnixSocketForward(t *testing.T) {
	r := newRig(t)
	r.vm("dev", 1000)
	gp := guestServer(t, "127.0.0.1:0")
	path := t.TempDir() + "/fwd.sock"
	f, err := r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "dev", UnixPath: path, GuestPort: gp})
	if err != nil {
		t.Fatal(err)
	}
	if f.UnixPath != path || f.HostPort != 0 {
		t.Fatalf("forward %+v", f)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v, want mode 0600", fi, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("abc"))
	c.(*net.UnixConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "3:abc" {
		t.Fatalf("through the socket: %q", got)
	}
	if len(r.rules.owners()) != 0 {
		t.Errorf("a unix forward got a port rule: %v", r.rules.owners())
	}
	if _, err := r.m.Add(context.Background(), api.VMForwardParams{IDOrName: "dev", UnixPath: path, GuestPort: gp}); !errors.Is(err, api.ErrExists) {
		t.Errorf("the same path twice: %v", err)
	}
	if err := r.m.Remove(context.Background(), api.VMForwardRemoveParams{IDOrName: "dev", UnixPath: path}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err == nil {
		t.Error("the socket is left after remove")
	}
}

func TestAutoModeBoundsWhatAGuestCanTake(t *testing.T) {
	r := newRig(t)
	vm := r.vm("dev", 1000)
	if err := r.m.SetMode(context.Background(), "dev", api.ForwardAuto, nil); err != nil {
		t.Fatal(err)
	}
	var ls []proto.Listener
	for p := 40000; p < 40000+MaxAuto+10; p++ {
		ls = append(ls, proto.Listener{BindAddress: "127.0.0.2", Port: p})
	}
	r.agents[vm.ID].snaps <- proto.ListenSnapshot{Listeners: ls}
	waitFor(t, "auto forwards", func() bool {
		res, _ := r.m.List(context.Background(), "dev")
		return len(res.Forwards) == len(ls)
	})
	res, _ := r.m.List(context.Background(), "dev")
	made := 0
	for _, f := range res.Forwards {
		if f.Conflict == "" {
			made++
		}
	}
	if made > MaxAuto {
		t.Fatalf("%d auto forwards made, at most %d allowed", made, MaxAuto)
	}
	if err := r.m.SetMode(context.Background(), "dev", api.ForwardOff, nil); err != nil {
		t.Fatal(err)
	}
	if res, _ := r.m.List(context.Background(), "dev"); len(res.Forwards) != 0 || len(r.rules.owners()) != 0 {
		t.Fatalf("after --forward off: %+v, rules %v", res.Forwards, r.rules.owners())
	}
}

func TestAutoConflictIsRetriedWhenTheHostPortFrees(t *testing.T) {
	r := newRig(t)
	vm := r.vm("dev", 1000)
	gp := guestServerFreeOnHost(t)
	host, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(gp)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.SetMode(context.Background(), "dev", api.ForwardAuto, nil); err != nil {
		t.Fatal(err)
	}
	r.agents[vm.ID].snaps <- proto.ListenSnapshot{Listeners: []proto.Listener{{BindAddress: "127.0.0.2", Port: gp}}}
	waitFor(t, "the conflict", func() bool {
		res, _ := r.m.List(context.Background(), "dev")
		return len(res.Forwards) == 1 && strings.Contains(res.Forwards[0].Conflict, "a host process")
	})
	host.Close()
	waitFor(t, "the forward once the host port is free", func() bool {
		res, _ := r.m.List(context.Background(), "dev")
		return len(res.Forwards) == 1 && res.Forwards[0].Conflict == ""
	})
	if got := roundTrip(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(gp)), []byte("z")); string(got) != "1:z" {
		t.Fatalf("through the retried forward: %q", got)
	}
}
