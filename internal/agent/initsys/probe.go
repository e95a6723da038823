package initsys

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ProbeEnv, set to "1" on the kernel command line (the kernel passes unknown
// name=value parameters to /init as environment), makes /init the
// accelerator probe: print ProbeMarker and power off, nothing else.
const ProbeEnv = "BANGER_ACCEL_PROBE"

// ProbeMarker is the console line the host's accelerator probe waits for.
const ProbeMarker = "banger-accel-probe: booted"

// Probe writes the marker on the console and switches the machine off (by a
// restart when power-off is refused: the probe's QEMU runs with -no-reboot).
// As PID 1 it does not return.
func Probe(w io.Writer) {
	fmt.Fprintln(w, ProbeMarker)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	// Not PID 1 or not allowed: the host kills the VMM once it saw the marker.
	time.Sleep(time.Second)
	os.Exit(0)
}
