package initsys

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"banger/internal/mountinfo"

	"golang.org/x/sys/unix"
)

// killGrace is how long processes get between SIGTERM and SIGKILL.
const killGrace = 2 * time.Second

// Shutdown stops every other process, flushes and unmounts the disks and
// powers the machine off. As PID 1 it does not return.
func Shutdown(log *slog.Logger) {
	log.Info("shutting down: stopping processes")
	killAll(log)
	unix.Sync()
	unmountDisks(log)
	unix.Sync()
	if CanPowerOff("/sys/firmware/acpi/tables") {
		log.Info("power off")
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	// Without ACPI power-off the kernel would only halt, leaving the VMM
	// running; a restart ends both QEMU (-no-reboot) and Firecracker.
	log.Info("power off by restart")
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		log.Error("reboot failed", "err", err)
	}
}

// CanPowerOff reports whether ACPI can switch the machine off: the firmware
// tables (acpiTables is /sys/firmware/acpi/tables) must include an FADT and
// a DSDT declaring the S5 sleep state.
func CanPowerOff(acpiTables string) bool {
	if _, err := os.Stat(filepath.Join(acpiTables, "FACP")); err != nil {
		return false
	}
	dsdt, err := os.ReadFile(filepath.Join(acpiTables, "DSDT"))
	if err != nil {
		return false
	}
	return bytes.Contains(dsdt, []byte("_S5_"))
}

// killAll sends SIGTERM to every process, waits for them to go, then SIGKILL.
func killAll(log *slog.Logger) {
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		if err := unix.Kill(-1, sig); errors.Is(err, unix.ESRCH) {
			return // nothing left
		}
		deadline := time.Now().Add(killGrace)
		for time.Now().Before(deadline) {
			if !hasChildren() {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		log.Warn("processes still running after signal", "signal", unix.SignalName(sig))
	}
}

// hasChildren reports whether this process has any child, without reaping.
// As PID 1 every process is a descendant, so false means none are left.
func hasChildren() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return !errors.Is(err, unix.ECHILD)
}

// diskFS are the filesystem types unmounted (or made read-only) at shutdown.
func diskFS() []string {
	return []string{"ext4", "ext3", "ext2", "xfs", "btrfs", "vfat", "overlay"}
}

// unmountDisks unmounts disk filesystems, newest first (work disk, then the
// overlay, then the lower disk); what cannot be unmounted is remounted
// read-only so its journal is clean.
func unmountDisks(log *slog.Logger) {
	ms, err := mountinfo.Read()
	if err != nil {
		log.Warn("unmount: cannot read mount table", "err", err)
		return
	}
	slices.Reverse(ms)
	for _, m := range ms {
		if !slices.Contains(diskFS(), m.FSType) {
			continue
		}
		if m.Target != "/" {
			if err := unix.Unmount(m.Target, 0); err == nil {
				log.Info("unmounted", "path", m.Target)
				continue
			}
		}
		if err := unix.Mount("", m.Target, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			log.Info("left mounted (data synced)", "path", m.Target, "err", err)
			continue
		}
		log.Info("remounted read-only", "path", m.Target)
	}
}
