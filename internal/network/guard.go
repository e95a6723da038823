package network

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Each VM tap gets a guard: a base chain of its own, hooked at ingress on
// that tap in banger's netdev table (same name as the inet table). Ingress
// runs before the bridge or any other part of the host sees a frame the
// guest sent, for every frame (ARP, IPv6, VLAN-tagged, addressed to a
// link-local group, and while the tap is off the bridge), so what passes
// is bound to the tap and nothing the guest writes can choose another:
//
//   - the Ethernet source is the VM's MAC;
//   - the destination is the bridge (the gateway) or, for ARP only,
//     broadcast; with VMs allowed to talk to each other any unicast
//     address but the tap's own (which only the host would receive);
//   - ARP is Ethernet/IPv4 with the VM's MAC and address as sender: a VM
//     cannot claim the gateway's or another VM's address;
//   - IPv4 has the VM's address as source, and goes to the bridge subnet
//     only, unless the VM has NAT: NAT eligibility is decided here, by the
//     tap the frame came in on;
//   - everything else (IPv6, other EtherTypes, VLAN tags) is dropped: the
//     chain's policy is drop.
//
// Because of this, a packet the inet table sees arriving from the bridge
// carries a source address bound to its tap, so matching NAT on
// `ip saddr @nat_vms` there is as good as matching the tap (routed packets
// show the bridge, not the tap, as input interface in the inet family).
// NAT is thus enforced twice, by tap here and by that address there, and
// no packet mark (a host-wide resource other software uses) is needed.

// guardChainPrefix starts the name of every guard chain.
const guardChainPrefix = "guard-"

// guard is what one tap may send.
type guard struct {
	tap    string
	tapMAC net.HardwareAddr // the host side's own MAC
	mac    net.HardwareAddr // the guest's MAC
	ip     netip.Addr       // the guest's address; invalid: drop everything
	nat    bool
	egress *egressGuard // nil: no egress policy beyond nat (egress_nft.go)
}

// guardNet is what every guard of a bridge shares.
type guardNet struct {
	subnet      netip.Prefix
	bridgeMAC   net.HardwareAddr
	allowVMToVM bool
}

func guardChainName(tap string) string { return guardChainPrefix + tap }

// guardTable is the Manager's netdev table.
func (m *Manager) guardTable() *nftables.Table {
	return &nftables.Table{Name: m.table, Family: nftables.TableFamilyNetdev}
}

// guardNet returns the shared guard settings for subnet.
func (m *Manager) guardNet(subnet netip.Prefix) guardNet {
	return guardNet{subnet: subnet, bridgeMAC: bridgeMAC(m.cfg.Bridge), allowVMToVM: m.cfg.AllowVMToVM}
}

// bridgeMAC is the fixed MAC banger gives its bridge.
func bridgeMAC(bridge string) net.HardwareAddr { return derivedMAC("bridge:" + bridge) }

var (
	etherBroadcast = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	etherGroupBit  = []byte{0x01, 0, 0, 0, 0, 0}
	// arpEthIPv4 is the fixed start of an Ethernet/IPv4 ARP header: hardware
	// type 1, protocol 0x0800, address lengths 6 and 4.
	arpEthIPv4 = []byte{0x00, 0x01, 0x08, 0x00}
	arpLens    = []byte{0x06, 0x04}
)

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
)

// guardRules are the rules of g's chain, in order; the chain's policy
// drops what no rule accepts.
func guardRules(g guard, n guardNet) (rules [][]expr.Any) {
	drop := verdict(expr.Verdict{Kind: expr.VerdictDrop})
	accept := verdict(expr.Verdict{Kind: expr.VerdictAccept})
	defer func() {
		// Every rule reads the frame as Ethernet: say so first, as nft
		// does (it is also what lets `nft list` print the rules by name).
		for i, r := range rules {
			rules[i] = join(ethernetDev(), r)
		}
	}()
	rules = [][]expr.Any{
		// Group addresses (multicast, link-local groups such as LLDP's,
		// which the bridge hands to the port device itself) but broadcast.
		join(ethDaddrMasked(etherGroupBit, expr.CmpOpNeq, make([]byte, 6)), ethDaddr(expr.CmpOpNeq, etherBroadcast), drop),
	}
	if n.allowVMToVM {
		if len(g.tapMAC) == 6 {
			rules = append(rules, join(ethDaddr(expr.CmpOpEq, g.tapMAC), drop))
		}
	} else {
		rules = append(rules, join(ethDaddr(expr.CmpOpNeq, n.bridgeMAC), ethDaddr(expr.CmpOpNeq, etherBroadcast), drop))
	}
	if !g.ip.Is4() || len(g.mac) != 6 {
		return rules // no binding: nothing is accepted
	}
	ip := g.ip.As4()
	rules = append(rules,
		join(ethSaddr(expr.CmpOpNeq, g.mac), drop),
		join(etherType(etherTypeARP), nhCmp(0, arpEthIPv4), nhCmp(4, arpLens), nhCmp(8, g.mac), nhCmp(14, ip[:]), accept),
		join(etherType(etherTypeIPv4), ethDaddr(expr.CmpOpEq, etherBroadcast), drop),
		join(etherType(etherTypeIPv4), nhCmp(12, ip[:]), ipDaddrIn(n.subnet), accept),
	)
	rules = append(rules, egressGuardRules(g)...)
	if g.nat {
		rules = append(rules, join(etherType(etherTypeIPv4), nhCmp(12, ip[:]), accept))
	}
	return rules
}

// ethernetDev matches frames from an Ethernet device (taps are).
func ethernetDev() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)},
	}
}

func ethDaddr(op expr.CmpOp, mac []byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 0, Len: 6},
		&expr.Cmp{Op: op, Register: 1, Data: mac},
	}
}

func ethDaddrMasked(mask []byte, op expr.CmpOp, want []byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 0, Len: 6},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 6, Mask: mask, Xor: make([]byte, 6)},
		&expr.Cmp{Op: op, Register: 1, Data: want},
	}
}

func ethSaddr(op expr.CmpOp, mac []byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		&expr.Cmp{Op: op, Register: 1, Data: mac},
	}
}

// etherType matches the EtherType field as written in the frame (a VLAN
// tag reads as 0x8100 there, so tagged frames never match).
func etherType(t uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(t)},
	}
}

// nhCmp matches len(want) bytes of the network header at offset.
func nhCmp(offset uint32, want []byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: uint32(len(want))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: want},
	}
}

// ipDaddrIn matches IPv4 destinations inside p.
func ipDaddrIn(p netip.Prefix) []expr.Any {
	mask := net.CIDRMask(p.Bits(), 32)
	netw := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: netw[:]},
	}
}

// queueGuard queues g's chain, replacing its rules when it exists. The
// tap must exist.
func queueGuard(conn *nftables.Conn, t *nftables.Table, g guard, n guardNet) {
	queueEgressSet(conn, t, g)
	policy := nftables.ChainPolicyDrop
	c := conn.AddChain(&nftables.Chain{Name: guardChainName(g.tap), Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityFilter, Policy: &policy, Device: g.tap})
	conn.FlushChain(c)
	for _, r := range guardRules(g, n) {
		conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: r})
	}
}

// queueGuardTable queues the netdev table with exactly guards.
func queueGuardTable(conn *nftables.Conn, t *nftables.Table, guards []guard, n guardNet) {
	conn.AddTable(t) // so that the delete below never fails
	conn.DelTable(t)
	conn.AddTable(t)
	for _, g := range guards {
		queueGuard(conn, t, g, n)
	}
}

// setGuard installs or updates g.
func (m *Manager) setGuard(g guard, subnet netip.Prefix) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := m.guardTable()
	conn.AddTable(t)
	queueGuard(conn, t, g, m.guardNet(subnet))
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("install guard of %s: %w", g.tap, err)
	}
	return nil
}

// removeGuard deletes tap's guard if it exists (older kernels delete it
// with the tap, newer ones keep it).
func (m *Manager) removeGuard(tap string) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := m.guardTable()
	names, err := guardChains(conn, t)
	if err != nil {
		return err
	}
	name := guardChainName(tap)
	for _, c := range names {
		if c == name {
			conn.DelChain(&nftables.Chain{Name: name, Table: t})
			if err := conn.Flush(); err != nil {
				return fmt.Errorf("remove guard of %s: %w", tap, err)
			}
			return nil
		}
	}
	return nil
}

// guardChains lists the chain names of the netdev table t (none when it
// does not exist).
func guardChains(conn *nftables.Conn, t *nftables.Table) ([]string, error) {
	chains, err := conn.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, fmt.Errorf("list nftables chains: %w", err)
	}
	var out []string
	for _, c := range chains {
		if c.Table.Name == t.Name && strings.HasPrefix(c.Name, guardChainPrefix) {
			out = append(out, c.Name)
		}
	}
	return out, nil
}

// guardFor builds vmID's guard from its tap link.
func guardFor(link netlink.Link, vmID string, ip netip.Addr, nat bool) guard {
	return guard{tap: link.Attrs().Name, tapMAC: link.Attrs().HardwareAddr, mac: MACFor(vmID), ip: ip, nat: nat}
}
