package initsys

import (
	"fmt"
	"strings"

	"banger/internal/bootcfg"
)

// diskRoles are the disk serials banger attaches.
func diskRoles() []string {
	return []string{bootcfg.SerialConfig, bootcfg.SerialRootfs, bootcfg.SerialOverlay, bootcfg.SerialWork}
}

// ParseDiskMap reads banger.disks=ROLE:vdX,... from a kernel command line and
// returns serial -> block device name (e.g. "banger-rootfs" -> "vda"). ROLE is
// a serial ("banger-rootfs") or its short form ("rootfs"); the device may be
// given as "vda" or "/dev/vda". No banger.disks parameter gives an empty map.
func ParseDiskMap(cmdline string) (map[string]string, error) {
	m := make(map[string]string)
	for _, field := range strings.Fields(cmdline) {
		value, ok := strings.CutPrefix(field, "banger.disks=")
		if !ok {
			continue
		}
		for _, item := range strings.Split(value, ",") {
			if item == "" {
				continue
			}
			role, dev, ok := strings.Cut(item, ":")
			if !ok {
				return nil, fmt.Errorf("banger.disks: %q is not ROLE:DEVICE", item)
			}
			serial, err := serialForRole(role)
			if err != nil {
				return nil, fmt.Errorf("banger.disks: %w", err)
			}
			dev = strings.TrimPrefix(dev, "/dev/")
			if dev == "" || strings.ContainsAny(dev, "/.") {
				return nil, fmt.Errorf("banger.disks: bad device %q for %s", dev, role)
			}
			m[serial] = dev
		}
	}
	return m, nil
}

func serialForRole(role string) (string, error) {
	for _, s := range diskRoles() {
		if role == s || "banger-"+role == s {
			return s, nil
		}
	}
	return "", fmt.Errorf("unknown disk role %q (want rootfs, overlay, work or config)", role)
}
