package initsys

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"banger/internal/bootcfg"
)

// inNetns runs fn on a locked thread inside a fresh network namespace. The
// thread is never unlocked, so the Go runtime discards it afterwards.
func inNetns(t *testing.T, fn func() error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestConfigureNetwork(t *testing.T) {
	inNetns(t, func() error {
		mac, _ := net.ParseMAC("02:00:00:00:00:42")
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth7", HardwareAddr: mac}, PeerName: "peer7"}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth pair: %w", err)
		}
		n := &bootcfg.Network{MAC: "02:00:00:00:00:42", Address: "172.30.0.2/24", Gateway: "172.30.0.1"}
		if err := ConfigureNetwork(context.Background(), n, slog.New(slog.DiscardHandler)); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("lo not up: %v", err)
		}
		link, err := netlink.LinkByName("eth7")
		if err != nil {
			return err
		}
		if link.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("eth7 not up")
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "172.30.0.2/24" {
			return fmt.Errorf("eth7 addresses %v (%v), want 172.30.0.2/24", addrs, err)
		}
		routes, err := netlink.RouteList(link, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.Equal(net.ParseIP("172.30.0.1")) {
				return nil
			}
		}
		return fmt.Errorf("no default route via 172.30.0.1 in %v", routes)
	})
}

func TestConfigureNetworkMissingInterface(t *testing.T) {
	inNetns(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		n := &bootcfg.Network{MAC: "02:00:00:00:00:99", Address: "172.30.0.2/24"}
		err := ConfigureNetwork(ctx, n, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "no interface with mac 02:00:00:00:00:99") {
			return fmt.Errorf("got %v, want a missing-interface error", err)
		}
		return nil
	})
}
