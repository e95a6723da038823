package network

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"banger/internal/model"
)

// TestEgressPolicyAtTheTap switches one emulated VM between policies and
// checks, for each, what TCP reaches an outside host: a network rule with
// a port opens that port only, deny wins over allow, none and allow
// without a rule reach nothing, open reaches everything; each change
// applies at once.
func TestEgressPolicyAtTheTap(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	l := newLab(t, Config{})
	out := outsideHost(t, l.m.Subnet())
	serveTCP(t, out, "10.99.0.2:2222")
	serveTCP(t, out, "10.99.0.2:2223")
	id := "eee0cafe0123456789"
	g := l.startVM(id, false)
	reach := func(port string) bool { return connects(t, g.ns, "10.99.0.2:"+port, dropTimeout) }
	set := func(p model.EgressPolicy) {
		t.Helper()
		if err := l.m.SetEgress(ctx, id, p); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		policy   model.EgressPolicy
		want2222 bool
		want2223 bool
	}{
		{model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"10.99.0.2:2222"}}, true, false},
		{model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"10.99.0.0/24"}}, true, true},
		{model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"10.99.0.0/24"}, Deny: []string{"10.99.0.2"}}, false, false},
		{model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"example.com"}}, false, false},
		{model.EgressPolicy{Mode: model.EgressNone}, false, false},
		{model.EgressPolicy{Mode: model.EgressOpen}, true, true},
		{model.EgressPolicy{Mode: model.EgressOpen, Deny: []string{"10.99.0.0/16"}}, false, false},
	}
	for _, s := range steps {
		set(s.policy)
		if got := reach("2222"); got != s.want2222 {
			t.Errorf("%+v: port 2222 reached %v, want %v", s.policy, got, s.want2222)
		}
		if got := reach("2223"); got != s.want2223 {
			t.Errorf("%+v: port 2223 reached %v, want %v", s.policy, got, s.want2223)
		}
	}
	// A connection outlives nothing its policy stops allowing, and goes
	// on while the policy keeps allowing it.
	echoTCP(t, out, "10.99.0.2:2224")
	set(model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"10.99.0.2:2224"}})
	var c net.Conn
	inNS(t, g.ns, func() { c, _ = net.DialTimeout("tcp4", "10.99.0.2:2224", reachTimeout) })
	if c == nil {
		t.Fatal("no connection to the echo server")
	}
	defer c.Close()
	if !echoes(c, "one") {
		t.Fatal("the echo server does not answer")
	}
	set(model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"10.99.0.0/24", "example.com"}})
	if !echoes(c, "two") {
		t.Error("a connection the new policy still allows was cut")
	}
	set(model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"10.99.0.2:2222"}})
	if echoes(c, "three") {
		t.Error("a connection the new policy does not allow went on")
	}
	if err := l.m.SetEgress(ctx, id, model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"2001:db8::/32"}}); err == nil {
		t.Error("an IPv6 rule was accepted")
	}
	if err := l.m.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.m.egress.PolicyOf(id); ok {
		t.Error("policy kept after detach")
	}
}

// echoTCP serves an echo server on addr inside ns.
func echoTCP(t *testing.T, ns netns.NsHandle, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	inNS(t, ns, func() { ln, err = net.Listen("tcp4", addr) })
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
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
}

// echoes reports whether msg comes back on c within dropTimeout.
func echoes(c net.Conn, msg string) bool {
	c.SetDeadline(time.Now().Add(dropTimeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return err == nil && string(buf) == msg
}
