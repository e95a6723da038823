package network

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A hostile guest writes whole Ethernet frames: these helpers build them
// by hand and send them from a guest namespace through a packet socket,
// so nothing in the guest's own stack (ARP, routing, source selection)
// gets in the way.

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func ethFrame(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	f := make([]byte, 0, 14+len(payload))
	f = append(f, dst...)
	f = append(f, src...)
	f = binary.BigEndian.AppendUint16(f, etherType)
	return append(f, payload...)
}

// arpPacket is an Ethernet/IPv4 ARP packet (op 1 request, 2 reply).
func arpPacket(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	p := []byte{0x00, 0x01, 0x08, 0x00, 0x06, 0x04}
	p = binary.BigEndian.AppendUint16(p, op)
	s, t := spa.As4(), tpa.As4()
	p = append(p, sha...)
	p = append(p, s[:]...)
	p = append(p, tha...)
	return append(p, t[:]...)
}

// udp4 is an IPv4 packet carrying a UDP datagram (no UDP checksum).
func udp4(src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	ip := make([]byte, 20, 28+len(data))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(28+len(data)))
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	ip = binary.BigEndian.AppendUint16(ip, sport)
	ip = binary.BigEndian.AppendUint16(ip, dport)
	ip = binary.BigEndian.AppendUint16(ip, uint16(8+len(data)))
	ip = binary.BigEndian.AppendUint16(ip, 0)
	return append(ip, data...)
}

// rawPort is a packet socket on a guest's interface.
type rawPort struct {
	fd      int
	ifindex int
	mac     net.HardwareAddr
}

// openRaw opens a packet socket on the guest side of tap (its only
// interface but lo) inside ns.
func openRaw(t *testing.T, ns netns.NsHandle, tap string) rawPort {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	must(t, err)
	defer h.Close()
	eth, err := h.LinkByName("g" + tap)
	must(t, err)
	var p rawPort
	inNS(t, ns, func() {
		p.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err == nil {
			err = unix.Bind(p.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: eth.Attrs().Index})
		}
	})
	must(t, err)
	t.Cleanup(func() { unix.Close(p.fd) })
	p.ifindex, p.mac = eth.Attrs().Index, eth.Attrs().HardwareAddr
	return p
}

// rawSend is one frame to send from a port.
type rawSend struct {
	from  rawPort
	frame []byte
}

// sendInOrder sends frames one after the other from one thread pinned to
// one CPU: the receiving side then handles them in that order (each goes
// through the same CPU's backlog), so a later frame's effect proves the
// earlier ones have been dealt with.
func sendInOrder(t *testing.T, frames ...rawSend) {
	t.Helper()
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // the thread is thrown away, pinned, when this ends
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			done <- err
			return
		}
		cpu := 0
		for !set.IsSet(cpu) {
			cpu++
		}
		set.Zero()
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- err
			return
		}
		for _, f := range frames {
			sa := &unix.SockaddrLinklayer{Ifindex: f.from.ifindex, Halen: 6}
			copy(sa.Addr[:], f.frame[:6])
			if err := unix.Sendto(f.from.fd, f.frame, 0, sa); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	must(t, <-done)
}

// awaitARPReply reads p until an ARP reply from sha/spa comes in (bounded).
func awaitARPReply(t *testing.T, p rawPort, sha net.HardwareAddr, spa netip.Addr) {
	t.Helper()
	tv := unix.NsecToTimeval(int64(reachTimeout))
	must(t, unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	want := spa.As4()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(reachTimeout)
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		f := buf[:n]
		if n >= 42 && binary.BigEndian.Uint16(f[12:]) == 0x0806 && binary.BigEndian.Uint16(f[20:]) == 2 &&
			net.HardwareAddr(f[22:28]).String() == sha.String() && netip.AddrFrom4([4]byte(f[28:32])) == netip.AddrFrom4(want) {
			return
		}
	}
	t.Fatalf("no ARP reply from %s", spa)
}

// neighMAC is the link-layer address ns (the current one for -1) holds
// for ip on link, "" when it has none.
func neighMAC(t *testing.T, ns netns.NsHandle, link string, ip netip.Addr) string {
	t.Helper()
	h := &netlink.Handle{}
	if ns != -1 {
		var err error
		h, err = netlink.NewHandleAt(ns)
		must(t, err)
		defer h.Close()
	}
	l, err := h.LinkByName(link)
	must(t, err)
	neighs, err := h.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
	must(t, err)
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr.String()
		}
	}
	return ""
}

// listenUDP opens a UDP socket on addr inside ns (the current one for -1).
func listenUDP(t *testing.T, ns netns.NsHandle, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	var err error
	listen := func() { pc, err = net.ListenPacket("udp4", addr) }
	if ns == -1 {
		listen()
	} else {
		inNS(t, ns, listen)
	}
	must(t, err)
	t.Cleanup(func() { pc.Close() })
	return pc
}

// readUDP returns the next datagram's text, "" when none comes within
// the timeout.
func readUDP(pc net.PacketConn, timeout time.Duration) string {
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(timeout))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}
