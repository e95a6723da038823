package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"banger/internal/model"
)

// TestProxyDecides runs the proxy on loopback (the client plays the VM)
// with a hook that takes allowed connections over: an allowed SNI reaches
// the hook with its ClientHello, a name not allowed and a request without
// a name are refused and listed as denials.
func TestProxyDecides(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	reg := NewRegistry()
	pol, err := Compile(model.EgressPolicy{Mode: model.EgressAllow,
		Allow: []string{"good.test", fmt.Sprintf("good.test:%d", port)}})
	if err != nil {
		t.Fatal(err)
	}
	reg.Set("vm1", netip.MustParseAddr("127.0.0.1"), pol)
	hooked := make(chan *Conn, 4)
	p := &Proxy{Registry: reg, Resolver: Resolver{Upstreams: func() []string { return nil }},
		Hook: func(_ context.Context, c *Conn) bool { c.Client.Close(); hooked <- c; return true }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Serve(ctx, l, true)
	send := func(b []byte) {
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(b)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 1)) // until the proxy closes
	}
	hello := clientHello(t, "good.test")
	send(hello)
	select {
	case c := <-hooked:
		if c.Name != "good.test" || !c.TLS || c.VMID != "vm1" || string(c.Head) != string(hello) {
			t.Errorf("hook got %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("allowed connection never reached the hook")
	}
	send(clientHello(t, "bad.test"))
	send(clientHello(t, ""))
	send([]byte("GET / HTTP/1.1\r\nHost: good.test\r\n\r\n")) // HTTP on the TLS port
	select {
	case c := <-hooked:
		t.Errorf("a refused connection reached the hook: %+v", c)
	default:
	}
	got := reg.Denials("vm1")
	if len(got) != 3 || got[0].Name != "bad.test" || got[0].Via != "proxy" {
		t.Errorf("denials %+v", got)
	}
	// A client the registry does not know gets nothing.
	reg.Remove("vm1")
	send(clientHello(t, "good.test"))
	select {
	case c := <-hooked:
		t.Errorf("an unknown client reached the hook: %+v", c)
	default:
	}
}

// TestProxyHookTracked: a connection the hook serves gets DialPort and is
// closed like a spliced one when the VM's policy stops allowing its name.
func TestProxyHookTracked(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	port := l.Addr().(*net.TCPAddr).Port // SO_ORIGINAL_DST may give the listener's port
	pol, err := Compile(model.EgressPolicy{Mode: model.EgressAllow,
		Allow: []string{"good.test", fmt.Sprintf("good.test:%d", port)}})
	if err != nil {
		t.Fatal(err)
	}
	reg.Set("vm1", netip.MustParseAddr("127.0.0.1"), pol)
	serving := make(chan *Conn, 1)
	ended := make(chan struct{})
	p := &Proxy{Registry: reg, Resolver: Resolver{Upstreams: func() []string { return nil }},
		Hook: func(_ context.Context, c *Conn) bool {
			serving <- c
			c.Client.Read(make([]byte, 1)) // until closed
			close(ended)
			return true
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Serve(ctx, l, true)
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(clientHello(t, "good.test"))
	select {
	case hc := <-serving:
		if hc.DialPort == nil {
			t.Error("no DialPort for a connection allowed by name")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hook not reached")
	}
	none, _ := Compile(model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"other.test"}})
	reg.Set("vm1", netip.MustParseAddr("127.0.0.1"), none)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("hooked connection not closed when its name stopped being allowed")
	}
}
