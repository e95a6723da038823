package initsys

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"banger/internal/bootcfg"
)

// Disks maps disk serials (bootcfg.Serial*) to device paths such as /dev/vda.
type Disks map[string]string

// ScanDisks reads sysBlock/vd*/serial (sysBlock is /sys/block) and returns the
// banger disks found; devDir is where device nodes live (/dev). Entries of
// override (from banger.disks=) win over serials.
func ScanDisks(sysBlock, devDir string, override map[string]string) (Disks, error) {
	found := make(Disks)
	paths, err := filepath.Glob(filepath.Join(sysBlock, "vd*"))
	if err != nil {
		return nil, fmt.Errorf("scan disks: %w", err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join(p, "serial"))
		if err != nil {
			continue // no serial attribute: not ours unless overridden
		}
		serial := strings.TrimRight(string(data), "\x00\n\r\t ")
		for _, role := range diskRoles() {
			if serial == role {
				found[role] = filepath.Join(devDir, filepath.Base(p))
			}
		}
	}
	for role, dev := range override {
		found[role] = filepath.Join(devDir, dev)
	}
	return found, nil
}

// FindDisks scans (ScanDisks) until every banger disk is present or ctx
// ends, again on each wake-up (the kernel added a device) and at least
// every 100 ms (wake may be nil). It then requires the config and rootfs
// disks; overlay and work are optional.
func FindDisks(ctx context.Context, sysBlock, devDir string, override map[string]string, wake <-chan struct{}) (Disks, error) {
	for {
		disks, err := ScanDisks(sysBlock, devDir, override)
		if err != nil {
			return nil, err
		}
		if len(disks) == len(diskRoles()) && allExist(disks) {
			return disks, nil
		}
		select {
		case <-ctx.Done():
			return checkRequired(disks, sysBlock)
		case <-wake:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allExist(d Disks) bool {
	for _, dev := range d {
		if _, err := os.Stat(dev); err != nil {
			return false
		}
	}
	return true
}

func checkRequired(d Disks, sysBlock string) (Disks, error) {
	for _, role := range []string{bootcfg.SerialConfig, bootcfg.SerialRootfs} {
		dev, ok := d[role]
		if !ok {
			return nil, fmt.Errorf("find disks: no disk with serial %s (block devices: %s)", role, listBlock(sysBlock))
		}
		if _, err := os.Stat(dev); err != nil {
			return nil, fmt.Errorf("find disks: %s: %w", role, err)
		}
	}
	for role, dev := range d {
		if _, err := os.Stat(dev); err != nil {
			delete(d, role)
		}
	}
	return d, nil
}

// listBlock describes what the kernel sees, for error messages.
func listBlock(sysBlock string) string {
	entries, err := os.ReadDir(sysBlock)
	if err != nil || len(entries) == 0 {
		return "none; is virtio_blk loaded?"
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if data, err := os.ReadFile(filepath.Join(sysBlock, name, "serial")); err == nil {
			name += "(serial=" + strings.TrimRight(string(data), "\x00\n ") + ")"
		}
		names = append(names, name)
	}
	return strings.Join(names, " ")
}
