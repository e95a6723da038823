package network

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"banger/internal/egress"
	"banger/internal/model"
)

// Egress policies are enforced at each VM's tap guard (guard.go), which
// binds everything below to the tap:
//
//   - none: the guard lets the VM reach the bridge subnet only; DNS
//     answers NAME.vm only.
//   - open: NAT to anywhere (the nat_vms set), but the deny CIDRs.
//   - allow: the guard passes, beyond the subnet, only TCP to ports 80 and
//     443 (which the inet table redirects to banger's egress proxy on the
//     gateway), TCP to the (address . port) pairs banger's DNS put in the
//     tap's set `egress-TAP` for allowed names with a port, and TCP to the
//     allowed networks; deny CIDRs first. Everything else (UDP beyond DNS
//     to the gateway, ICMP out, IPv6) is dropped. In the inet table the
//     VM's address is in `egress_vms`: its 80/443 are redirected to the
//     proxy (and dropped in forward should they ever get there), the rest
//     is forwarded and masqueraded.

// Ports of the egress proxy on the gateway address.
const (
	EgressHTTPPort = 15080
	EgressTLSPort  = 15443
)

// egressSetName is the inet set of VM addresses under an allowlist.
const egressSetName = "egress_vms"

// MinLearnedTTL is the shortest time an address learned from a DNS answer
// stays allowed; MaxLearnedTTL the longest.
const (
	MinLearnedTTL = 30 * time.Second
	MaxLearnedTTL = time.Hour
)

// egressGuard is the part of a tap's guard an egress policy adds.
type egressGuard struct {
	allow bool
	nets  []egress.Rule // network rules (allow mode)
	deny  []netip.Prefix
}

func egressSet(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: egressSetName, KeyType: nftables.TypeIPAddr}
}

// learnedSet is the netdev set of (address . port) pairs a tap's VM may
// reach directly, filled from DNS answers with timeouts.
func learnedSet(t *nftables.Table, tap string) *nftables.Set {
	return &nftables.Set{Table: t, Name: "egress-" + tap, HasTimeout: true, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)}
}

// guardOf is guardFor plus vmID's egress policy, when it has one that
// changes the guard.
func (m *Manager) guardOf(link netlink.Link, vmID string, ip netip.Addr, nat bool) guard {
	return m.withEgress(guardFor(link, vmID, ip, nat), vmID)
}

// withEgress adds vmID's egress rules to g.
func (m *Manager) withEgress(g guard, vmID string) guard {
	pol, ok := m.egress.PolicyOf(vmID)
	if !ok {
		return g
	}
	switch {
	case pol.Mode == model.EgressAllow:
		eg := &egressGuard{allow: true, deny: pol.Deny}
		for _, r := range pol.Rules {
			if r.Net.IsValid() {
				eg.nets = append(eg.nets, r)
			}
		}
		g.egress = eg
		g.nat = false
	case pol.Mode == model.EgressOpen && len(pol.Deny) > 0 && g.nat:
		g.egress = &egressGuard{deny: pol.Deny}
	}
	return g
}

// egressGuardRules are the rules g's egress policy adds, after the rule
// accepting the bridge subnet and before the one accepting everything for
// NAT.
func egressGuardRules(g guard) [][]expr.Any {
	if g.egress == nil || !g.ip.Is4() {
		return nil
	}
	drop := verdict(expr.Verdict{Kind: expr.VerdictDrop})
	accept := verdict(expr.Verdict{Kind: expr.VerdictAccept})
	ip := g.ip.As4()
	from := join(etherType(etherTypeIPv4), nhCmp(12, ip[:]))
	tcp := join(from, nhCmp(9, []byte{unix.IPPROTO_TCP}))
	var rules [][]expr.Any
	for _, d := range g.egress.deny {
		rules = append(rules, join(from, ipDaddrIn(d), drop))
	}
	if !g.egress.allow {
		return rules
	}
	rules = append(rules,
		join(tcp, dport(80), accept),
		join(tcp, dport(443), accept),
		join(tcp, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: "egress-" + g.tap},
		}, accept),
	)
	for _, r := range g.egress.nets {
		rule := join(tcp, ipDaddrIn(r.Net))
		if r.Port != 0 {
			rule = join(rule, dport(r.Port))
		}
		rules = append(rules, join(rule, accept))
	}
	// TCP segments without SYN go on to the inet table, which forwards
	// them only for connections it tracks (opened by a SYN one of the rules
	// above accepted): a connection outlives its learned address, and a
	// segment that opens nothing is dropped there.
	rules = append(rules, join(tcp, tcpFlags(tcpSYN, 0), accept))
	return rules
}

// TCP flag bits.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// tcpFlags matches TCP segments whose flags under mask equal want.
func tcpFlags(mask, want byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{mask}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{want}},
	}
}

// ctNewNotSYN matches TCP segments conntrack sees as new that are not a
// plain SYN (with loose tracking, a mid-stream segment would otherwise open
// a connection no rule allowed).
func ctNewNotSYN() []expr.Any {
	return join(l4proto(unix.IPPROTO_TCP), []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpFIN | tcpSYN | tcpRST | tcpACK}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{tcpSYN}},
	})
}

// queueEgressSet queues the learned set of g's tap when its policy needs
// one (before the chain whose rules use it).
// (AddSet fails only to encode a set, which then fails the batch.)
func queueEgressSet(conn *nftables.Conn, t *nftables.Table, g guard) {
	if g.egress != nil && g.egress.allow {
		_ = conn.AddSet(learnedSet(t, g.tap), nil)
	}
}

// addEgressRules queues the inet parts of egress: the egress_vms set, the
// redirect of its TCP 80/443 to the proxy, forwarding and masquerade of the
// rest (the tap guards have filtered it), and the input accept for the
// proxy's ports on the gateway (the proxy serves only VMs under an
// allowlist).
func (m *Manager) addEgressRules(conn *nftables.Conn, t *nftables.Table, gw netip.Addr) error {
	set := egressSet(t)
	if err := conn.AddSet(set, nil); err != nil {
		return fmt.Errorf("nftables set %s: %w", egressSetName, err)
	}
	br := m.cfg.Bridge
	fromBridge := ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br)
	toOutside := ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br)
	accept := verdict(expr.Verdict{Kind: expr.VerdictAccept})
	drop := verdict(expr.Verdict{Kind: expr.VerdictDrop})
	policy := nftables.ChainPolicyAccept
	pre := conn.AddChain(&nftables.Chain{Name: "egress-redirect", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &policy})
	for _, p := range [][2]uint16{{80, EgressHTTPPort}, {443, EgressTLSPort}} {
		conn.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: join(fromBridge, saddrIn(set),
			l4proto(unix.IPPROTO_TCP), dport(p[0]), []expr.Any{
				&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(p[1])},
				&expr.Redir{RegisterProtoMin: 1},
			})})
	}
	fwd := &nftables.Chain{Name: "forward", Table: t}
	for _, p := range []uint16{80, 443} {
		conn.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: join(fromBridge, saddrIn(set), l4proto(unix.IPPROTO_TCP), dport(p), drop)})
	}
	conn.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: join(fromBridge, saddrIn(set), ctNewNotSYN(), drop)})
	conn.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: join(fromBridge, toOutside, saddrIn(set), l4proto(unix.IPPROTO_TCP), accept)})
	conn.AddRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Name: "postrouting", Table: t},
		Exprs: join(saddrIn(set), toOutside, []expr.Any{&expr.Masq{}})})
	in := &nftables.Chain{Name: "input", Table: t}
	for _, p := range []uint16{EgressHTTPPort, EgressTLSPort} {
		conn.InsertRule(&nftables.Rule{Table: t, Chain: in, Exprs: join(fromBridge, daddrIs(gw), l4proto(unix.IPPROTO_TCP), dport(p), accept)})
	}
	return nil
}

// SetEgress applies policy p to attached VM vmID at once: its tap guard,
// its NAT and egress_vms membership, its learned set (emptied) and the
// proxy's view (live proxied connections the policy no longer allows are
// closed). Allow mode needs the bridge: user-mode networking has no
// SetEgress.
func (m *Manager) SetEgress(ctx context.Context, vmID string, p model.EgressPolicy) error {
	if err := checkVMID(vmID); err != nil {
		return err
	}
	pol, err := egress.Compile(p)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.ready(); err != nil {
		return err
	}
	ip, err := m.attachedIP(ctx, vmID, "set egress")
	if err != nil {
		return err
	}
	m.egress.Set(vmID, ip, pol)
	n, err := m.setNATMember(vmID, ip, pol.Mode == model.EgressOpen)
	if err == nil {
		err = m.setEgressMember(vmID, ip, pol.Mode == model.EgressAllow)
	}
	if err == nil {
		err = m.setForwarding(n > 0 || m.egress.CountAllow() > 0)
	}
	if err == nil && pol.Mode == model.EgressAllow {
		err = forgetConnections(ip, pol)
	}
	if err != nil {
		return fmt.Errorf("set egress for vm %s: %w", vmID, err)
	}
	m.log.Info("egress policy applied", "vm", vmID, "mode", pol.Mode, "allow", len(pol.Rules), "deny", len(pol.Deny))
	return nil
}

// setEgressMember puts ip in or out of egress_vms and empties the tap's
// learned set (a new policy learns again from DNS).
func (m *Manager) setEgressMember(vmID string, ip netip.Addr, on bool) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	set := egressSet(m.nftTable())
	elems, err := conn.GetSetElements(set)
	if err != nil {
		return fmt.Errorf("list nftables set %s: %w", egressSetName, err)
	}
	in := false
	for _, e := range elems {
		if a, ok := netip.AddrFromSlice(e.Key); ok && a == ip {
			in = true
		}
	}
	switch {
	case on && !in:
		err = conn.SetAddElements(set, setElements([]netip.Addr{ip}))
	case !on && in:
		err = conn.SetDeleteElements(set, setElements([]netip.Addr{ip}))
	}
	if err != nil {
		return fmt.Errorf("update nftables set %s: %w", egressSetName, err)
	}
	if on {
		conn.FlushSet(learnedSet(m.guardTable(), TapName(vmID)))
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("update nftables set %s: %w", egressSetName, err)
	}
	return nil
}

// detachEgress forgets vmID's policy and removes its address from
// egress_vms and its learned set (its guard is gone already).
func (m *Manager) detachEgress(vmID string, ip netip.Addr) error {
	m.egress.Remove(vmID)
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := m.setEgressMember(vmID, ip, false); err != nil {
		return err
	}
	sets, err := conn.GetSets(m.guardTable())
	if err != nil {
		return nil // no netdev table: nothing to remove
	}
	name := "egress-" + TapName(vmID)
	for _, s := range sets {
		if s.Name == name {
			conn.DelSet(s)
			if err := conn.Flush(); err != nil {
				return fmt.Errorf("remove nftables set %s: %w", name, err)
			}
		}
	}
	return nil
}

// learn records the addresses of an answer for name in the learned set of
// the VM at client, for the ports its policy allows name on directly
// (other than 80 and 443, which go through the proxy). Addresses the
// proxy would refuse (inside the host or its networks) or the policy
// denies are not learned.
func (m *Manager) learn(client netip.Addr, subnet netip.Prefix, name string, addrs []netip.Addr, ttl time.Duration) {
	id, pol, ok := m.egress.Lookup(client)
	if !ok {
		return
	}
	ports := pol.NamePorts(name)
	if len(ports) == 0 {
		return
	}
	ttl = min(max(ttl, MinLearnedTTL), MaxLearnedTTL)
	var elems []nftables.SetElement
	for _, a := range addrs {
		if egress.Refused(a, subnet, nil) != "" || pol.Denies(a) {
			continue
		}
		b := a.As4()
		for _, p := range ports {
			key := append(b[:], byte(p>>8), byte(p), 0, 0)
			elems = append(elems, nftables.SetElement{Key: key, Timeout: ttl})
		}
	}
	if len(elems) == 0 {
		return
	}
	set := learnedSet(m.guardTable(), TapName(id))
	// Delete then add renews the timeout of an element that exists; the
	// delete fails (and with it the batch) when one does not: then add.
	for _, del := range []bool{true, false} {
		conn, err := nftables.New()
		if err != nil {
			m.log.Warn("egress: learn addresses", "vm", id, "err", err)
			return
		}
		if del {
			if err := conn.SetDeleteElements(set, elems); err != nil {
				continue
			}
		}
		if err := conn.SetAddElements(set, elems); err != nil {
			m.log.Warn("egress: learn addresses", "vm", id, "err", err)
			return
		}
		if err := conn.Flush(); err == nil {
			return
		} else if !del {
			m.log.Warn("egress: learn addresses", "vm", id, "name", name, "err", err)
		}
	}
}

// EgressDenials returns vmID's recent denials (DNS and proxy), oldest first.
func (m *Manager) EgressDenials(vmID string) []egress.Denial { return m.egress.Denials(vmID) }
