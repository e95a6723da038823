package initsys

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// watchUevents listens to the kernel's device events (the netlink uevent
// socket udev reads): each event wakes the returned channel, so a wait
// for devices probed in the background (FindDisks) rescans when the kernel
// adds one instead of on a timer. stop closes the socket (through Go's
// poller: the reader stops without touching a reused descriptor).
func watchUevents() (wake <-chan struct{}, stop func(), err error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, nil, fmt.Errorf("uevent socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("uevent socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "uevents")
	ch := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 8192)
		for {
			// ENOBUFS: events were dropped; the wake-up makes the
			// caller rescan, and reading goes on.
			if _, err := f.Read(buf); err != nil && !errors.Is(err, unix.ENOBUFS) {
				return
			}
			select {
			case ch <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
	}()
	return ch, func() { f.Close() }, nil
}
