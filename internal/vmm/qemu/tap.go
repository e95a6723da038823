package qemu

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// tapFD is the descriptor number a handed-over tap has in QEMU: the first
// of exec's ExtraFiles.
const tapFD = 3

// openTap attaches to the tap device name (created by the network manager,
// or created here and gone with its last descriptor) the way QEMU's
// -netdev tap,ifname= does: a tap with no packet information and virtio-net
// headers. The confined QEMU gets this descriptor and runs in an empty
// network namespace, where it could not find the tap by name.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open tap %s: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open tap %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}
