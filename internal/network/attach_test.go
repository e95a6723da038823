package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"banger/internal/api"
)

func ipForward(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// openLikeQEMU opens an existing tap the way QEMU's -netdev tap,ifname=X does.
func openLikeQEMU(t *testing.T, name string, flags uint16) {
	t.Helper()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		t.Errorf("open tap %s with flags %#x as QEMU does: %v", name, flags, err)
	}
}

func TestAttachMakesIsolatedTap(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	m, ips := newTestManager(t, Config{})
	if err := m.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	id := "f00dcafe0123456789"
	att, err := m.Attach(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if att.Tap != "btf00dcafe0123" || att.MAC != MACFor(id).String() ||
		att.Address.String() != "172.30.0.2/24" || att.Gateway.String() != "172.30.0.1" ||
		len(att.DNS) != 1 || att.DNS[0] != att.Gateway || att.Domain != "vm" {
		t.Errorf("attachment %+v", att)
	}
	tap, err := netlink.LinkByName(att.Tap)
	if err != nil {
		t.Fatal(err)
	}
	br, _ := netlink.LinkByName("banger0")
	if tap.Type() != "tuntap" || tap.Attrs().MasterIndex != br.Attrs().Index || tap.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("tap: type %s master %d (bridge %d) flags %v", tap.Type(), tap.Attrs().MasterIndex, br.Attrs().Index, tap.Attrs().Flags)
	}
	if tap.Attrs().HardwareAddr.String() == att.MAC {
		t.Errorf("tap has the guest's MAC %s", att.MAC)
	}
	pi, err := netlink.LinkGetProtinfo(tap)
	if err != nil || !pi.Isolated {
		t.Errorf("tap isolation: %+v %v", pi, err)
	}
	openLikeQEMU(t, att.Tap, unix.IFF_TAP|unix.IFF_NO_PI)
	openLikeQEMU(t, att.Tap, unix.IFF_TAP|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
	if _, err := netlink.LinkByName(att.Tap); err != nil {
		t.Errorf("tap gone after QEMU closed it (not persistent): %v", err)
	}

	if got := ipForward(t); got != "1" {
		t.Errorf("ip_forward = %s with a NAT VM, want 1", got)
	}
	prev := m.forwardPrevPath()
	if b, err := os.ReadFile(prev); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Errorf("recorded previous ip_forward: %q %v", b, err)
	}

	// Setup again (a daemon restart) keeps the VM's tap and NAT membership.
	must(t, m.Setup(ctx))
	if got := natSetMembers(t, m); len(got) != 1 || got[0] != att.Address.Addr().String() {
		t.Errorf("NAT set after a second Setup: %v", got)
	}
	again, err := m.Attach(ctx, id, true)
	if err != nil || again.Address != att.Address || again.Tap != att.Tap {
		t.Errorf("second Attach: %+v %v, want %+v", again, err, att)
	}

	if err := m.SetNAT(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if got := ipForward(t); got != "0" {
		t.Errorf("ip_forward = %s with no NAT VM, want the previous 0", got)
	}
	if err := m.SetNAT(ctx, "nosuchvm", true); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("SetNAT of an unattached VM: %v", err)
	}

	for range 2 { // Detach is idempotent
		if err := m.Detach(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := netlink.LinkByName(att.Tap); err == nil {
		t.Error("tap still exists after Detach")
	}
	if all, _ := ips.ListIPs(ctx); len(all) != 0 {
		t.Errorf("allocations after Detach: %v", all)
	}
	if _, err := os.Stat(prev); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists: %v", prev, err)
	}
}

func TestAttachAllocatesDistinctAddresses(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	m, _ := newTestManager(t, Config{})
	if err := m.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	for _, id := range []string{"a1", "b2", "c3"} {
		att, err := m.Attach(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[att.Address.Addr()]; ok {
			t.Fatalf("%s and %s both got %s", other, id, att.Address)
		}
		seen[att.Address.Addr()] = id
	}
	if err := m.Detach(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	att, err := m.Attach(ctx, "d4", false)
	if err != nil {
		t.Fatal(err)
	}
	if owner := seen[att.Address.Addr()]; owner != "b2" {
		t.Errorf("d4 got %s (held by %q), want b2's released address", att.Address, owner)
	}
	if got := ipForward(t); got != "0" {
		t.Errorf("ip_forward = %s without NAT VMs, want 0", got)
	}
}

func TestAttachPoolExhausted(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	m, ips := newTestManager(t, Config{Subnet: netip.MustParsePrefix("10.77.0.0/30")})
	if err := m.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, "first", true); err != nil {
		t.Fatal(err)
	}
	_, err := m.Attach(ctx, "second", true)
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "no free address in 10.77.0.0/30") {
		t.Fatalf("Attach with a full pool: %v", err)
	}
	if _, err := netlink.LinkByName(TapName("second")); err == nil {
		t.Error("failed Attach left its tap")
	}
	if all, _ := ips.ListIPs(ctx); len(all) != 1 {
		t.Errorf("allocations after failed Attach: %v", all)
	}
}

func TestAttachRefusesTapOfAnotherVM(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	m, ips := newTestManager(t, Config{})
	if err := m.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, "0123456789abXXX", false); err != nil {
		t.Fatal(err)
	}
	_, err := m.Attach(ctx, "0123456789abYYY", false)
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("Attach of an id sharing the tap name: %v", err)
	}
	if all, _ := ips.ListIPs(ctx); len(all) != 1 {
		t.Errorf("allocations after refused Attach: %v", all)
	}
}

func TestForwardingLeftAloneWhenAlreadyOn(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	must(t, os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644))
	m, _ := newTestManager(t, Config{})
	must(t, m.Setup(ctx))
	_, err := m.Attach(ctx, "natvm", true)
	must(t, err)
	prev := m.forwardPrevPath()
	if _, err := os.Stat(prev); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("recorded a previous value although forwarding was already on: %v", err)
	}
	must(t, m.Detach(ctx, "natvm"))
	must(t, m.Teardown(ctx))
	if got := ipForward(t); got != "1" {
		t.Errorf("ip_forward = %s after Teardown, want the host's 1 kept", got)
	}
}

// A daemon of an earlier version kept the value to restore in its own
// state; the next change takes it over, so it is still restored.
func TestForwardingRecordInStateTakenOver(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	m, _ := newTestManager(t, Config{})
	must(t, m.Setup(ctx))
	legacy := m.legacyForwardPrevPath()
	must(t, os.MkdirAll(filepath.Dir(legacy), 0o700))
	must(t, os.WriteFile(legacy, []byte("0\n"), 0o600))
	must(t, os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644))
	_, err := m.Attach(ctx, "natvm", false)
	must(t, err)
	must(t, m.SetNAT(ctx, "natvm", false)) // no NAT VM: the found value comes back
	if got := ipForward(t); got != "0" {
		t.Errorf("ip_forward = %s, want the 0 recorded in the state folder", got)
	}
	for _, p := range []string{legacy, m.forwardPrevPath()} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after the restore: %v", p, err)
		}
	}
}

// The host's record folder is refused when others may write it.
func TestHostRunDirMustBeOwn(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o777))
	if _, err := lockHostRunDir(dir); err == nil {
		t.Fatal("a folder anyone may write was used for the host's record")
	}
	must(t, os.Chmod(dir, 0o700))
	unlock, err := lockHostRunDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}
