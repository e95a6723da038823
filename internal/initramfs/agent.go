package initramfs

import (
	"fmt"
	"io"
	"os"
)

// AgentArchive writes a newc cpio whose /init is agentBinary (mode 0755),
// with the directories the agent mounts on (dev, proc, sys, mnt, newroot) and
// a /dev/console character device (5,1).
func AgentArchive(w io.Writer, agentBinary string) error {
	a := newArchive(w)
	for _, d := range []string{"dev", "proc", "sys", "mnt", "newroot"} {
		if err := a.dir(d); err != nil {
			return fmt.Errorf("agent archive: %w", err)
		}
	}
	if err := a.charDev("dev/console", 0o600, 5, 1); err != nil {
		return fmt.Errorf("agent archive: %w", err)
	}
	f, err := os.Open(agentBinary)
	if err != nil {
		return fmt.Errorf("agent archive: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("agent archive: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("agent archive: %s is not a regular file", agentBinary)
	}
	if err := a.stream("init", 0o755, fi.Size(), f); err != nil {
		return fmt.Errorf("agent archive: %w", err)
	}
	if err := a.close(); err != nil {
		return fmt.Errorf("agent archive: %w", err)
	}
	return nil
}
