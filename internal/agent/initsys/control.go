package initsys

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"banger/internal/agent/proto"
	"banger/internal/bootcfg"
)

// controlPortName is the virtio-serial port the host serves (see
// vmm/qemu ControlPortName).
const controlPortName = "banger.ctl"

// findControlPort returns the device of the control port, "" when the VM
// has none (Firecracker, an older VMM command line).
func findControlPort(sysRoot, devRoot string) string {
	ports, _ := filepath.Glob(filepath.Join(sysRoot, "class/virtio-ports/*/name"))
	for _, p := range ports {
		name, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(name)) == controlPortName {
			return filepath.Join(devRoot, filepath.Base(filepath.Dir(p)))
		}
	}
	return ""
}

// reidentifier returns the function that gives this guest a clone's new
// network identity and hostname. It starts from the boot configuration's
// MAC and remembers each change (a clone may be forked again).
func reidentifier(cfg *bootcfg.Config, log *slog.Logger) func(proto.Identity) error {
	var mu sync.Mutex
	current := ""
	if cfg.Network != nil {
		current = cfg.Network.MAC
	}
	return func(id proto.Identity) error {
		mu.Lock()
		defer mu.Unlock()
		if err := checkHostname(id.Hostname); err != nil {
			return err
		}
		if err := reidentifySecrets("/", id, log); err != nil {
			return err
		}
		if current == "" {
			return errors.New("no network interface to re-identify")
		}
		if err := renumber(current, id); err != nil {
			return err
		}
		current = id.MAC
		if err := unix.Sethostname([]byte(id.Hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
		c := *cfg
		c.Hostname = id.Hostname
		c.Network = &bootcfg.Network{MAC: id.MAC, Address: id.Address, Gateway: id.Gateway, DNS: id.DNS, DNSSearch: id.Search}
		if err := WriteEtc("/", &c); err != nil {
			return err
		}
		if err := newMachineID("/etc/machine-id"); err != nil {
			log.Warn("machine-id", "err", err)
		}
		return nil
	}
}

func checkHostname(h string) error {
	if !bootcfg.ValidHostname(h) {
		return fmt.Errorf("bad hostname %q", h)
	}
	return nil
}

// renumber moves the interface with MAC old to id's MAC and address: link
// down, new MAC, IPv4 addresses replaced, link up, default route.
func renumber(old string, id proto.Identity) error {
	oldMAC, err := net.ParseMAC(old)
	if err != nil {
		return fmt.Errorf("network: bad mac %q: %w", old, err)
	}
	mac, err := net.ParseMAC(id.MAC)
	if err != nil {
		return fmt.Errorf("network: bad mac %q: %w", id.MAC, err)
	}
	addr, err := netlink.ParseAddr(id.Address)
	if err != nil {
		return fmt.Errorf("network: bad address %q: %w", id.Address, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	var link netlink.Link
	for _, l := range links {
		if l.Attrs().HardwareAddr.String() == oldMAC.String() {
			link = l
		}
	}
	if link == nil {
		return fmt.Errorf("network: no interface has mac %s", old)
	}
	if err := netlink.LinkSetDown(link); err != nil {
		return fmt.Errorf("network: link down: %w", err)
	}
	if err := netlink.LinkSetHardwareAddr(link, mac); err != nil {
		return fmt.Errorf("network: set mac: %w", err)
	}
	addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
	for _, a := range addrs {
		netlink.AddrDel(link, &a)
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("network: add %s: %w", id.Address, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("network: link up: %w", err)
	}
	if id.Gateway != "" {
		gw := net.ParseIP(id.Gateway)
		if gw == nil {
			return fmt.Errorf("network: bad gateway %q", id.Gateway)
		}
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw, Scope: netlink.SCOPE_UNIVERSE}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("network: default route via %s: %w", gw, err)
		}
	}
	return nil
}

// newMachineID gives a systemd image a new machine id (when it has one).
func newMachineID(path string) error {
	data, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(data)) == "" {
		return nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	return replaceFile(path, hex.EncodeToString(b[:])+"\n", 0o444)
}
