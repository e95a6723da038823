package network

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

func TestTableName(t *testing.T) {
	for bridge, want := range map[string]string{
		"":         "banger",
		"banger0":  "banger",
		"banger1":  "banger-banger1",
		"bge12-3":  "banger-bge12-3",
		"br-test0": "banger-br-test0",
	} {
		if got := TableName(bridge); got != want {
			t.Errorf("TableName(%q) = %q, want %q", bridge, got, want)
		}
	}
	m, err := New(Config{Bridge: "demo1", StateDir: t.TempDir()}, newMemIPs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Table() != "banger-demo1" {
		t.Errorf("Manager on demo1 uses table %q", m.Table())
	}
}

func TestPortOwner(t *testing.T) {
	for alias, want := range map[string][2]string{
		portAlias("abc123", "banger0"): {"abc123", "banger0"},
		"banger:abc123":                {"abc123", ""},
	} {
		id, br, ok := portOwner(alias)
		if !ok || id != want[0] || br != want[1] {
			t.Errorf("portOwner(%q) = %q %q %v, want %q %q", alias, id, br, ok, want[0], want[1])
		}
	}
	for _, alias := range []string{"", "banger", "banger:", "banger:@banger0", "other:abc"} {
		if id, br, ok := portOwner(alias); ok {
			t.Errorf("portOwner(%q) = %q %q, want not a port", alias, id, br)
		}
	}
}

func inetTables(t *testing.T) []string {
	t.Helper()
	conn, err := nftables.New()
	must(t, err)
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	must(t, err)
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	slices.Sort(names)
	return names
}

// Two daemons on different bridges each keep their own table, NAT set and
// share of IP forwarding: one's changes never undo the other's.
func TestTwoBridgesKeepSeparateTables(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	a, _ := newTestManager(t, Config{})
	b, _ := newTestManager(t, Config{Bridge: "bangere2e", Subnet: netip.MustParsePrefix("10.42.0.0/24")})
	must(t, a.Setup(ctx))
	must(t, b.Setup(ctx))
	if got, want := inetTables(t), []string{"banger", "banger-bangere2e"}; !slices.Equal(got, want) {
		t.Fatalf("tables %v, want %v", got, want)
	}
	attA, err := a.Attach(ctx, "vma", true)
	must(t, err)
	attB, err := b.Attach(ctx, "vmb", true)
	must(t, err)
	// Setup again (b's daemon restarts) keeps a's members.
	must(t, b.Setup(ctx))
	if got := natSetMembers(t, a); !slices.Equal(got, []string{attA.Address.Addr().String()}) {
		t.Errorf("NAT set of banger0: %v", got)
	}
	if got := natSetMembers(t, b); !slices.Equal(got, []string{attB.Address.Addr().String()}) {
		t.Errorf("NAT set of bangere2e: %v", got)
	}

	// Each daemon's Reconcile keeps the other's taps.
	must(t, a.Reconcile(ctx, map[string]bool{"vma": true}))
	must(t, b.Reconcile(ctx, map[string]bool{"vmb": true}))
	for _, tap := range []string{attA.Tap, attB.Tap} {
		if _, err := netlink.LinkByName(tap); err != nil {
			t.Errorf("tap %s gone after the other bridge's Reconcile: %v", tap, err)
		}
	}

	// a turned forwarding on (and recorded 0); its last NAT VM going away
	// must not cut b's VM off.
	must(t, a.SetNAT(ctx, "vma", false))
	if got := ipForward(t); got != "1" {
		t.Errorf("ip_forward = %s after banger0 dropped NAT while bangere2e has a NAT VM", got)
	}
	must(t, b.Detach(ctx, "vmb"))
	if got := natSetMembers(t, b); len(got) != 0 {
		t.Errorf("NAT set of bangere2e after Detach: %v", got)
	}
	// Now nobody needs it: b, the last to need it, restores the value a
	// found, although a turned forwarding on (the record is the host's).
	if got := ipForward(t); got != "0" {
		t.Errorf("ip_forward = %s with no NAT VM anywhere, want 0 restored", got)
	}
	if _, err := os.Stat(a.forwardPrevPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the record is left after the restore: %v", err)
	}
	must(t, a.SetNAT(ctx, "vma", false))
	if got := ipForward(t); got != "0" {
		t.Errorf("ip_forward = %s after a's next change, want 0", got)
	}

	must(t, b.Teardown(ctx))
	if got := inetTables(t); !slices.Equal(got, []string{"banger"}) {
		t.Errorf("tables after bangere2e's Teardown %v, want only banger", got)
	}
	if _, err := netlink.LinkByName(attA.Tap); err != nil {
		t.Errorf("tap of banger0 gone after bangere2e's Teardown: %v", err)
	}
	must(t, a.SetNAT(ctx, "vma", true)) // a's table still works
	if got := natSetMembers(t, a); !slices.Equal(got, []string{attA.Address.Addr().String()}) {
		t.Errorf("NAT set of banger0 after the other's Teardown: %v", got)
	}
	must(t, a.Teardown(ctx))
	if got := inetTables(t); len(got) != 0 {
		t.Errorf("tables after both Teardowns: %v", got)
	}
}
