package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"banger/internal/model"
)

// vmText is vm show's rendering of a VM (vm create and vm set print it too).
func vmText(w io.Writer, v model.VMRecord) error {
	started := ""
	if v.StartedAt != nil {
		started = v.StartedAt.Format(time.RFC3339)
	}
	return keyValues(w, [][2]string{
		{"name", v.Name}, {"id", v.ID}, {"state", stateText(v)}, {"image", v.ImageName}, {"kernel", v.KernelName},
		{"backend", backendText(v)}, {"vcpus", fmt.Sprint(v.VCPUCount)}, {"memory", fmt.Sprintf("%d MiB", v.MemoryMiB)},
		{"overlay", humanBytes(v.SystemOverlayBytes)}, {"work disk", humanBytes(v.WorkDiskBytes)},
		{"network", v.Network}, {"ip", v.GuestIP}, {"dns", v.DNSName}, {"nat", natWord(v.NATEnabled)}, {"forwards", forwardsLine(v.Forwards)}, {"egress", egressWord(v)}, {"secrets", bindingsText(v.Secrets)},
		{"pid", pidText(v.PID)}, {"started", started}, {"stop reason", safe(v.StopReason)}, {"last error", safeText(v.LastError)},
		{"pending restart", strings.Join(v.PendingRestart, ", ")}, {"boot restarts", bootRestartsText(v.BootRestarts)},
	})
}

// backendText is the backend with why it runs under its accelerator, when
// the daemon recorded why.
func backendText(v model.VMRecord) string {
	if v.AccelReason == "" {
		return v.Backend
	}
	return v.Backend + " (" + safeText(v.AccelReason) + ")"
}

// bootRestartsText is the count of stalled-boot VMM restarts, "" when none.
func bootRestartsText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d (the guest stalled before banger's init)", n)
}

// stateText is the state, with the reason of a pause ("paused: host disk full").
func stateText(v model.VMRecord) string {
	if v.PauseReason != "" {
		return string(v.State) + ": " + v.PauseReason
	}
	return string(v.State)
}

func pidText(pid int) string {
	if pid == 0 {
		return ""
	}
	return fmt.Sprint(pid)
}

func natWord(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
