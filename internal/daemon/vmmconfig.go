package daemon

import (
	"fmt"
	"os"
	"strconv"

	"banger/internal/units"
	"banger/internal/vmm/qemu"
	"banger/internal/vmm/vmmproc"
)

// Environment variables for the VMMs.
const (
	// EnvVMMUser names the system user VMMs run as (default banger-vmm),
	// created at daemon start when missing.
	EnvVMMUser = "BANGER_VMM_USER"
	// EnvSerialLogMax caps each serial console log file (default 1M).
	EnvSerialLogMax = "BANGER_SERIAL_LOG_MAX"
	// EnvSerialLogFiles is how many rotated serial log files are kept (default 1).
	EnvSerialLogFiles = "BANGER_SERIAL_LOG_FILES"
)

// Bounds on the serial log settings.
const (
	minSerialLogMax   = 4 << 10
	maxSerialLogMax   = 1 << 30
	maxSerialLogFiles = 16
)

// qemuOptions are the QEMU backend's options from the environment. As root,
// VMMs are confined to the vmm user (created if missing); otherwise they run
// as the daemon's own user, which -runas and -chroot cannot change.
func (d *Daemon) qemuOptions(forceTCG bool) (qemu.Options, error) {
	opts := qemu.Options{Logger: d.log, ForceTCG: forceTCG}
	if v := os.Getenv(EnvSerialLogMax); v != "" {
		n, err := units.ParseSize(v)
		if err != nil || n < minSerialLogMax || n > maxSerialLogMax {
			return opts, fmt.Errorf("%s=%q: want a size from 4K to 1G", EnvSerialLogMax, v)
		}
		opts.SerialLogMax = n
	}
	if v := os.Getenv(EnvSerialLogFiles); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSerialLogFiles {
			return opts, fmt.Errorf("%s=%q: want a count from 1 to %d", EnvSerialLogFiles, v, maxSerialLogFiles)
		}
		opts.SerialLogKeep = n
	}
	if os.Geteuid() != 0 {
		d.log.Warn("not root: vmms run as the daemon's user, without -runas, -chroot or -sandbox")
		return opts, nil
	}
	name := os.Getenv(EnvVMMUser)
	if name == "" {
		name = vmmproc.DefaultVMMUser
	}
	u, err := vmmproc.EnsureSysUser(name)
	if err != nil {
		return opts, err
	}
	opts.RunAs = &u
	return opts, nil
}
