package vm

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"banger/internal/api"
)

// DefaultMaxDiskSize caps one VM disk (work disk or system overlay) when the
// daemon is given no --max-disk-size.
const DefaultMaxDiskSize int64 = 1 << 40

// diskRequest is one disk a request makes or grows.
type diskRequest struct {
	what string // "work disk size"
	text string // as the caller wrote it, e.g. "15T"
	size int64
	// allocated is what the disk already occupies on the host (growing
	// needs only the rest).
	allocated int64
}

// checkDiskSpace enforces the disk limits: each disk at most the maximum
// disk size, and together no more new space than the filesystem holding the
// VM folders has free. Disks are sparse, so this bounds what a guest can
// make the host write, not what it writes at once.
func (m *Manager) checkDiskSpace(disks ...diskRequest) error {
	max := m.maxDiskBytes()
	var need int64
	var parts []string
	for _, d := range disks {
		if d.size > max {
			return api.Errorf(api.ErrInvalid, "%s %s is over the %s limit (bangerd --max-disk-size)", d.what, d.text, humanBytes(max))
		}
		if d.size > d.allocated {
			need += d.size - d.allocated
		}
		parts = append(parts, strings.TrimSuffix(d.what, " size")+" "+d.text)
	}
	dir := m.cfg.State.VMs()
	free, err := m.freeSpace(dir)
	if err != nil {
		return fmt.Errorf("free space for vm disks: %w", err)
	}
	if need > free {
		return api.Errorf(api.ErrInvalid, "%s needs up to %s but only %s is free on %s (bangerd --max-disk-size caps one disk at %s)",
			strings.Join(parts, " + "), humanBytes(need), humanBytes(free), dir, humanBytes(max))
	}
	return nil
}

func (m *Manager) maxDiskBytes() int64 {
	if m.cfg.MaxDiskBytes > 0 {
		return m.cfg.MaxDiskBytes
	}
	return DefaultMaxDiskSize
}

// freeBytes is the space unprivileged files may still take on the
// filesystem of path (statfs f_bavail), from the nearest existing parent.
func freeBytes(path string) (int64, error) {
	for {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		if err == nil {
			return int64(st.Bavail) * st.Bsize, nil
		}
		parent := filepath.Dir(path)
		if !errors.Is(err, fs.ErrNotExist) || parent == path {
			return 0, fmt.Errorf("statfs %s: %w", path, err)
		}
		path = parent
	}
}

// humanBytes formats a byte count with a binary unit, for messages.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit && exp < 5; v /= unit {
		div *= unit
		exp++
	}
	s := fmt.Sprintf("%.1f", float64(n)/float64(div))
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTPE"[exp]) + "iB"
}
