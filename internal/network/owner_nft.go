package network

import (
	"fmt"
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// PortOwner says that new TCP connections to Port on the host's loopback
// (127.0.0.0/8 and ::1) are allowed only from sockets of UID and root.
type PortOwner struct {
	Port uint16
	UID  uint32
}

// OwnerRules keeps banger's loopback owner rules: an inet table of its own
// (Table) with one output chain. For each PortOwner a SYN (without ACK)
// sent on loopback to its port by a socket whose uid is neither the owner
// nor root is answered with a TCP reset. The kernel decides by the
// socket's uid (meta skuid), which a caller cannot forge. Nothing outside
// Table is ever read or changed.
type OwnerRules struct {
	Table string
}

// OwnerTableName is the owner rules' table for a bridge's daemon.
func OwnerTableName(bridge string) string { return TableName(bridge) + "-fwd" }

func (o OwnerRules) table() *nftables.Table {
	return &nftables.Table{Name: o.Table, Family: nftables.TableFamilyINet}
}

// Set replaces every rule with owners, atomically (one batch). An empty
// list removes the table.
func (o OwnerRules) Set(owners []PortOwner) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("owner rules: nftables: %w", err)
	}
	t := o.table()
	conn.AddTable(t) // so that the delete below never fails
	conn.DelTable(t)
	if len(owners) > 0 {
		conn.AddTable(t)
		policy := nftables.ChainPolicyAccept
		out := conn.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &policy})
		sorted := append([]PortOwner(nil), owners...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Port < sorted[j].Port })
		for _, po := range sorted {
			for _, dst := range [][]expr.Any{loopback4(), loopback6()} {
				conn.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: ownerRule(dst, po)})
			}
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("install nftables table inet %s: %w", o.Table, err)
	}
	return nil
}

// ownerRule: dst, tcp dport Port, tcp flags & (syn|ack) == syn, meta skuid
// != UID, meta skuid != 0: reject with tcp reset. A packet without a socket
// (no skuid) does not match: those are never a new connection's SYN.
func ownerRule(dst []expr.Any, po PortOwner) []expr.Any {
	const syn, ack = 0x02, 0x10
	return join(dst, l4proto(unix.IPPROTO_TCP), dport(po.Port), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{syn | ack}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{syn}},
		&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(po.UID)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
	})
}

// loopback4 matches IPv4 packets to 127.0.0.0/8.
func loopback4() []expr.Any {
	return join(ipv4(), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127, 0, 0, 0}},
	})
}

// loopback6 matches IPv6 packets to ::1.
func loopback6() []expr.Any {
	one := make([]byte, 16)
	one[15] = 1
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: one},
	}
}
