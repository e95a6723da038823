package network

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// natSetName is the set of VM addresses allowed out through NAT. Nothing
// outside banger's own table (see TableName) is ever read or changed.
const natSetName = "nat_vms"

// TableName is the nftables table (family inet) banger uses for bridge:
// "banger" for the default bridge, "banger-BRIDGE" for any other, so that
// daemons on different bridges never share a table.
func TableName(bridge string) string {
	if bridge == "" || bridge == DefaultBridge {
		return "banger"
	}
	return "banger-" + bridge
}

// nftTable is the Manager's own table.
func (m *Manager) nftTable() *nftables.Table {
	return &nftables.Table{Name: m.table, Family: nftables.TableFamilyINet}
}

func natSet(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: natSetName, KeyType: nftables.TypeIPAddr}
}

// tableExists reports whether the table t exists.
func tableExists(conn *nftables.Conn, t *nftables.Table) (bool, error) {
	tables, err := conn.ListTablesOfFamily(t.Family)
	if err != nil {
		return false, fmt.Errorf("list nftables tables: %w", err)
	}
	return slices.ContainsFunc(tables, func(x *nftables.Table) bool { return x.Name == t.Name }), nil
}

// installTable (re)creates the inet table and the netdev table of tap
// guards in one atomic batch, keeping the NAT members that are inside
// subnet and guarding every tap of this bridge that exists.
func (m *Manager) installTable(ctx context.Context, subnet netip.Prefix) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := m.nftTable()
	var keep []netip.Addr
	exists, err := tableExists(conn, t)
	if err != nil {
		return err
	}
	if exists {
		members, err := natMembers(conn, t)
		if err == nil {
			for _, a := range members {
				if subnet.Contains(a) {
					keep = append(keep, a)
				}
			}
		}
	}
	guards, err := m.portGuards(ctx, subnet, keep)
	if err != nil {
		return err
	}
	conn.AddTable(t) // so that the delete below never fails
	conn.DelTable(t)
	conn.AddTable(t)
	set := natSet(t)
	if err := conn.AddSet(set, setElements(keep)); err != nil {
		return fmt.Errorf("nftables set %s: %w", natSetName, err)
	}
	m.addRules(conn, t, set, gatewayOf(subnet))
	if err := m.addEgressRules(conn, t, gatewayOf(subnet)); err != nil {
		return err
	}
	queueGuardTable(conn, m.guardTable(), guards, m.guardNet(subnet))
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("install nftables tables inet and netdev %s: %w", t.Name, err)
	}
	m.setNATView(keep)
	return nil
}

// addRules queues the three chains:
//
//	forward (policy drop): traffic that neither enters nor leaves the
//	  bridge accept (banger has no say: an accept here opens nothing, as
//	  other tables' chains still run, and the host's firewall governs its
//	  other interfaces); -> bridge established,related accept; bridge ->
//	  bridge drop (or accept with AllowVMToVM); bridge, saddr in nat_vms
//	  accept; anything else from or to the bridge falls to the drop policy.
//	  A source address from the bridge is bound to its tap by the guards
//	  (guard.go), which also drop at the tap what a VM without NAT sends
//	  beyond the subnet.
//	postrouting (nat): saddr in nat_vms, oifname != bridge -> masquerade.
//	input: from the bridge: established,related accept; DNS (udp/tcp 53) to
//	  the gateway accept; icmp accept; anything else drop.
func (m *Manager) addRules(conn *nftables.Conn, t *nftables.Table, set *nftables.Set, gw netip.Addr) {
	accept := expr.Verdict{Kind: expr.VerdictAccept}
	drop := expr.Verdict{Kind: expr.VerdictDrop}
	policy := nftables.ChainPolicyAccept
	fwdPolicy := nftables.ChainPolicyDrop
	br := m.cfg.Bridge

	fwd := conn.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &fwdPolicy})
	vmToVM := drop
	if m.cfg.AllowVMToVM {
		vmToVM = accept
	}
	rules := [][]expr.Any{
		join(ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, br), ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), verdict(accept)),
		join(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), ctEstablished(), verdict(accept)),
		join(ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br), ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), verdict(vmToVM)),
		join(ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br), saddrIn(set), verdict(accept)),
	}
	for _, r := range rules {
		conn.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: r})
	}

	post := conn.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &policy})
	conn.AddRule(&nftables.Rule{Table: t, Chain: post,
		Exprs: join(saddrIn(set), ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), []expr.Any{&expr.Masq{}})})

	in := conn.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &policy})
	fromBridge := ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br)
	rules = [][]expr.Any{
		join(fromBridge, ctEstablished(), verdict(accept)),
		join(fromBridge, daddrIs(gw), l4proto(unix.IPPROTO_UDP), dport(53), verdict(accept)),
		join(fromBridge, daddrIs(gw), l4proto(unix.IPPROTO_TCP), dport(53), verdict(accept)),
		join(fromBridge, ipv4(), l4proto(unix.IPPROTO_ICMP), verdict(accept)),
		join(fromBridge, verdict(drop)),
	}
	for _, r := range rules {
		conn.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: r})
	}
}

func join(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func verdict(v expr.Verdict) []expr.Any { return []expr.Any{&v} }

// ifname compares the input or output interface name.
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

func ctEstablished() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func ipv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// saddrIn matches IPv4 packets whose source address is in set.
func saddrIn(set *nftables.Set) []expr.Any {
	return join(ipv4(), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
	})
}

func daddrIs(a netip.Addr) []expr.Any {
	b := a.As4()
	return join(ipv4(), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b[:]},
	})
}

func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

func dport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

func setElements(addrs []netip.Addr) []nftables.SetElement {
	var out []nftables.SetElement
	for _, a := range addrs {
		b := a.As4()
		out = append(out, nftables.SetElement{Key: b[:]})
	}
	return out
}

// deleteTable removes the Manager's tables (inet and netdev) if they exist.
func (m *Manager) deleteTable() error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	found := false
	for _, t := range []*nftables.Table{m.nftTable(), m.guardTable()} {
		exists, err := tableExists(conn, t)
		if err != nil {
			return err
		}
		if exists {
			conn.DelTable(t)
			found = true
		}
	}
	if !found {
		return nil
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("delete nftables tables %s: %w", m.table, err)
	}
	m.setNATView(nil)
	return nil
}
