package forward

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// ErrBusy means a host port is already bound by someone.
var ErrBusy = errors.New("host port busy")

// boundSocket is a TCP socket bound to a loopback address but not yet
// listening: the port is reserved, and no connection can be made to it,
// until listen (which happens only once the owner rule is installed).
type boundSocket struct {
	fd   int
	addr netip.AddrPort
}

// bindLoopback binds a TCP socket to addr:port without listening. Port 0
// picks a free port. A port in use is ErrBusy.
func bindLoopback(addr netip.Addr, port int) (*boundSocket, error) {
	if !addr.IsLoopback() {
		return nil, fmt.Errorf("bind %s: not a loopback address", addr)
	}
	family := unix.AF_INET
	if addr.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	// As net.Listen does: lets a port whose old connections linger in
	// TIME_WAIT be reused; never lets two listeners share one.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setsockopt: %w", err)
	}
	var sa unix.Sockaddr
	if addr.Is4() {
		sa = &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
	} else {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("setsockopt: %w", err)
		}
		sa = &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("bind %s: %w", netip.AddrPortFrom(addr, uint16(port)), ErrBusy)
		}
		return nil, fmt.Errorf("bind %s: %w", netip.AddrPortFrom(addr, uint16(port)), err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	switch s := got.(type) {
	case *unix.SockaddrInet4:
		port = s.Port
	case *unix.SockaddrInet6:
		port = s.Port
	}
	return &boundSocket{fd: fd, addr: netip.AddrPortFrom(addr, uint16(port))}, nil
}

// listen starts accepting and hands the socket to the net package.
func (b *boundSocket) listen() (net.Listener, error) {
	if err := unix.Listen(b.fd, 1024); err != nil {
		b.close()
		return nil, fmt.Errorf("listen %s: %w", b.addr, err)
	}
	f := os.NewFile(uintptr(b.fd), "forward "+b.addr.String())
	ln, err := net.FileListener(f)
	f.Close() // FileListener keeps its own descriptor
	b.fd = -1
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", b.addr, err)
	}
	return ln, nil
}

func (b *boundSocket) close() {
	if b.fd >= 0 {
		unix.Close(b.fd)
		b.fd = -1
	}
}

// ipv6Loopback reports whether the host has ::1 (checked by binding it).
func ipv6Loopback() bool {
	b, err := bindLoopback(netip.IPv6Loopback(), 0)
	if err != nil {
		return false
	}
	b.close()
	return true
}

// bindAll binds port on every address, all or nothing. Port 0 picks a port
// free on the first address and uses it for the others too (retrying a few
// times when it is taken on one of them).
func bindAll(addrs []netip.Addr, port int) ([]*boundSocket, error) {
	tries := 1
	if port == 0 {
		tries = 8
	}
	var err error
	for range tries {
		var out []*boundSocket
		p := port
		for _, a := range addrs {
			var b *boundSocket
			b, err = bindLoopback(a, p)
			if err != nil {
				break
			}
			p = int(b.addr.Port())
			out = append(out, b)
		}
		if err == nil {
			return out, nil
		}
		for _, b := range out {
			b.close()
		}
	}
	return nil, err
}
