package vmmproc

import (
	"fmt"
	"os"

	"banger/internal/api"
)

// PrepareRunDir readies runDir for a new VMM: it fails with api.ErrConflict
// when m's process, named by runDir/pidFile, already runs there; otherwise
// it creates runDir and removes the stale files named (pidfile, sockets) a
// crashed VMM may have left.
func PrepareRunDir(runDir, pidFile string, m Match, stale ...string) error {
	if p, err := Lookup(runDir, pidFile, m); err == nil {
		return api.Errorf(api.ErrConflict, "%s already running for %s (pid %d)", m.Program, runDir, p.PID)
	}
	if err := os.MkdirAll(runDir, 0o750); err != nil {
		return err
	}
	if err := RemoveFiles(runDir, stale...); err != nil {
		return fmt.Errorf("remove stale files: %w", err)
	}
	return nil
}
