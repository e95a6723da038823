package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"
)

// MaxConns bounds the connections one VM's forwards carry at once; more
// wait in the listen backlog.
const MaxConns = 1024

// openTimeout bounds opening a channel to the guest for one connection.
const openTimeout = 15 * time.Second

// listener is one forward: a host port on one or more loopback addresses.
type listener struct {
	m         *Manager
	st        *vmState
	addrs     []netip.Addr
	hostPort  int
	guestPort int
	auto      bool
	unixPath  string // a Unix socket forward (no host port)
	// guestHost is the guest address to connect to ("" until known: tried
	// on loopback, then at the address the guest binds).
	mu        sync.Mutex
	guestHost string
	bound     []*boundSocket
	lns       []net.Listener
	conns     map[net.Conn]bool
	conflict  string
	closed    bool
}

func (m *Manager) newListener(st *vmState, addrs []netip.Addr, hostPort, guestPort int, auto bool) *listener {
	return &listener{m: m, st: st, addrs: addrs, hostPort: hostPort, guestPort: guestPort, auto: auto, conns: map[net.Conn]bool{}}
}

// open reserves the host port (bound, not listening); m.mu held.
func (m *Manager) open(l *listener) error {
	bs, err := bindAll(l.addrs, l.hostPort)
	if err != nil {
		return err
	}
	l.bound = bs
	l.hostPort = int(bs[0].addr.Port())
	l.conflict = ""
	return nil
}

// reserved reports whether the forward holds its host port.
func (l *listener) reserved() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed && (len(l.bound) > 0 || len(l.lns) > 0)
}

// serve starts listening (after the owner rule is in place) and accepting.
func (l *listener) serve() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bound {
		ln, err := b.listen()
		if err != nil {
			l.m.log.Warn("forward listen", "vm", l.st.name, "err", err)
			continue
		}
		l.lns = append(l.lns, ln)
		go l.accept(ln)
	}
	l.bound = nil
}

func (l *listener) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, b := range l.bound {
		b.close()
	}
	for _, ln := range l.lns {
		ln.Close()
	}
	for c := range l.conns {
		c.Close()
	}
	l.bound, l.lns = nil, nil
}

func (l *listener) view() api.VMForward {
	f := api.VMForward{HostPort: l.hostPort, UnixPath: l.unixPath, GuestPort: l.guestPort, Auto: l.auto, Conflict: l.conflict}
	if l.conflict == "" {
		for _, a := range l.addrs {
			f.HostAddrs = append(f.HostAddrs, a.String())
		}
	}
	return f
}

func (l *listener) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.m.log.Warn("forward accept", "vm", l.st.name, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if !l.st.sem.acquire(l.m.base) {
			c.Close()
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			l.st.sem.release()
			return
		}
		l.conns[c] = true
		l.mu.Unlock()
		go func() {
			defer l.st.sem.release()
			l.carry(c)
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
	}
}

// carry connects c to the guest port and copies both ways.
func (l *listener) carry(c net.Conn) {
	defer c.Close()
	remote, err := l.dialGuest()
	if err != nil {
		l.m.log.Debug("forward connect", "vm", l.st.name, "guest_port", l.guestPort, "err", err)
		return
	}
	pipe(c, remote)
}

// dialGuest opens a direct-tcpip channel to the guest port, trying the
// known guest address, then loopback, then the guest's bind addresses. A
// dead agent connection is dropped and dialled once more.
func (l *listener) dialGuest() (net.Conn, error) {
	for attempt := 0; attempt < 2; attempt++ {
		ctx, cancel := context.WithTimeout(l.m.base, openTimeout)
		gc, err := l.st.guest.get(ctx)
		cancel()
		if err != nil {
			return nil, err
		}
		conn, err := l.dialVia(gc)
		if err == nil {
			return conn, nil
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			return nil, err // the guest refused: nothing listens there
		}
		l.st.guest.drop(gc)
	}
	return nil, fmt.Errorf("vm %q: agent connection lost", l.st.name)
}

func (l *listener) dialVia(gc *guest.Client) (net.Conn, error) {
	l.mu.Lock()
	known := l.guestHost
	l.mu.Unlock()
	hosts := []string{"127.0.0.1", "::1"}
	if known != "" && known != hosts[0] && known != hosts[1] {
		hosts = append([]string{known}, hosts...)
	} else if known == "::1" {
		hosts = []string{"::1", "127.0.0.1"}
	}
	var lastErr error
	for _, h := range hosts {
		conn, err := openChannel(gc, net.JoinHostPort(h, strconv.Itoa(l.guestPort)))
		if err == nil {
			l.mu.Lock()
			l.guestHost = h
			l.mu.Unlock()
			return conn, nil
		}
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) {
			return nil, err
		}
		lastErr = err
	}
	// Not on loopback: ask where the guest binds the port.
	ctx, cancel := context.WithTimeout(l.m.base, openTimeout)
	ports, err := gc.Ports(ctx)
	cancel()
	if err != nil {
		return nil, err
	}
	for _, p := range ports {
		if p.Proto != "tcp" || p.Port != l.guestPort {
			continue
		}
		h := connectHost(p.BindAddress)
		conn, err := openChannel(gc, net.JoinHostPort(h, strconv.Itoa(l.guestPort)))
		if err == nil {
			l.mu.Lock()
			l.guestHost = h
			l.mu.Unlock()
			return conn, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// connectHost is the address to connect to for a listener bound at bind.
func connectHost(bind string) string {
	a, err := netip.ParseAddr(bind)
	switch {
	case err != nil:
		return "127.0.0.1"
	case a.IsUnspecified() && a.Is4():
		return "127.0.0.1"
	case a.IsUnspecified():
		return "::1"
	}
	return a.String()
}

// openChannel dials addr in the guest through the agent, bounded by
// openTimeout: a guest that never answers gets its connection closed.
func openChannel(gc *guest.Client, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := gc.SSH().Dial("tcp", addr)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-time.After(openTimeout):
		gc.Close()
		return nil, fmt.Errorf("open %s in the guest: no answer within %v", addr, openTimeout)
	}
}

// pipe copies both ways, passing half-closes through, until both
// directions end; an error in either closes both.
func pipe(a, b net.Conn) {
	defer b.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	half := func(dst, src net.Conn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			a.Close()
			b.Close()
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go half(a, b)
	go half(b, a)
	wg.Wait()
}

// guestCache is one VM's agent connection, shared by its forwards and
// redialled after the VM restarts.
type guestCache struct {
	m    *Manager
	vmID string

	mu   sync.Mutex
	c    *guest.Client
	boot string // the boot the connection belongs to
}

func bootKey(vm model.VMRecord) string {
	k := strconv.Itoa(vm.PID)
	if vm.StartedAt != nil {
		k += "@" + vm.StartedAt.String()
	}
	return k
}

func (g *guestCache) get(ctx context.Context) (*guest.Client, error) {
	vm, err := g.m.vms.GetVM(ctx, g.vmID)
	if err != nil {
		return nil, err
	}
	if vm.State != model.VMRunning {
		return nil, fmt.Errorf("vm %q is %s", vm.Name, vm.State)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.c != nil && g.boot == bootKey(vm) {
		return g.c, nil
	}
	if g.c != nil {
		g.c.Close()
		g.c = nil
	}
	c, err := g.m.dial(ctx, vm)
	if err != nil {
		return nil, err
	}
	g.c, g.boot = c, bootKey(vm)
	return c, nil
}

// drop forgets c (when it is still the cached connection) and closes it.
func (g *guestCache) drop(c *guest.Client) {
	g.mu.Lock()
	if g.c == c {
		g.c = nil
	}
	g.mu.Unlock()
	c.Close()
}

func (g *guestCache) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.c != nil {
		g.c.Close()
		g.c = nil
	}
}

// semaphore bounds a VM's concurrent connections.
type semaphore chan struct{}

func (s semaphore) acquire(ctx context.Context) bool {
	select {
	case s <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s semaphore) release() { <-s }
