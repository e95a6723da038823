package initsys

import (
	"errors"
	"fmt"
	"os"

	"banger/internal/mountinfo"

	"golang.org/x/sys/unix"
)

// isMounted reports whether target is a mount point (false when /proc is absent).
func isMounted(target string) bool {
	ms, err := mountinfo.Read()
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.Target == target {
			return true
		}
	}
	return false
}

// mountFS mounts fstype at target, creating target; it does nothing when
// target is already a mount point.
func mountFS(source, target, fstype string, flags uintptr, data string) error {
	if isMounted(target) {
		return nil
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", target, err)
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		if errors.Is(err, unix.EBUSY) && isMounted(target) {
			return nil
		}
		return fmt.Errorf("mount %s on %s (%s): %w", source, target, fstype, err)
	}
	return nil
}

// moveMount moves the mount at from to to (mount --move), creating to.
func moveMount(from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return fmt.Errorf("move mount %s: %w", from, err)
	}
	if err := unix.Mount(from, to, "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move mount %s to %s: %w", from, to, err)
	}
	return nil
}
