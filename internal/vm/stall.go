package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"banger/internal/model"
	"banger/internal/paths"
)

// cpuReporter is a backend that can describe a running guest's vCPUs
// (registers, interrupt controller, the code and stack at each instruction
// pointer), for the record of a stalled boot.
type cpuReporter interface {
	CPUState(ctx context.Context, runDir string) (string, error)
}

// stallConsoleLines is how much of the console a stall record keeps.
const stallConsoleLines = 200

// recordStall keeps what is known of a stalled boot in the VM's folder
// (paths.VMStallLog(n), n counting this boot's stalls from 1): why the
// watchdog acted, the VMM's description of the guest's vCPUs when its
// backend gives one, and the console's last lines. It runs before the
// stalled VMM is stopped, and returns the record's path ("" when it could
// not be written; the stall is handled the same).
func (m *Manager) recordStall(vm *model.VMRecord, n int, reason error) string {
	path := filepath.Join(vm.Dir, paths.VMStallLog(n))
	cpus := "(the backend does not describe its vCPUs)"
	if r, ok := m.backend.(cpuReporter); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := r.CPUState(ctx, filepath.Join(vm.Dir, paths.VMRunDir))
		cancel()
		if err != nil {
			s = "(vCPU state unavailable: " + err.Error() + ")"
		}
		cpus = s
	}
	text := fmt.Sprintf("stall %d of VM %s (%s), %s\nreason: %v\n\n== vCPUs ==\n%s\n\n== console, last %d lines ==\n%s\n",
		n, vm.Name, vm.ID, time.Now().UTC().Format(time.RFC3339), reason, cpus,
		stallConsoleLines, tail(filepath.Join(vm.Dir, paths.VMSerialLog), stallConsoleLines))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		m.log.Warn("record stalled boot", "vm", vm.Name, "err", err)
		return ""
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		m.log.Warn("record stalled boot", "vm", vm.Name, "err", err)
		return ""
	}
	return path
}

// clearStalls removes the stall records of the VM's previous boot.
func clearStalls(vm *model.VMRecord) {
	old, _ := filepath.Glob(filepath.Join(vm.Dir, paths.VMStallPrefix+"*.log"))
	for _, p := range old {
		os.Remove(p)
	}
}
