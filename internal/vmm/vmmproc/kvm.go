package vmmproc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// KVMDevice is the KVM device node.
const KVMDevice = "/dev/kvm"

const (
	kvmGetAPIVersion = 0xAE00 // _IO(KVMIO, 0x00)
	kvmAPIVersion    = 12
)

// CheckKVM returns nil when dev (normally KVMDevice) opens read-write and
// reports KVM API version 12.
func CheckKVM(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	v, err := unix.IoctlRetInt(fd, kvmGetAPIVersion)
	if err != nil {
		return fmt.Errorf("%s: KVM_GET_API_VERSION: %w", dev, err)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("%s: kvm api version %d, want %d", dev, v, kvmAPIVersion)
	}
	return nil
}
