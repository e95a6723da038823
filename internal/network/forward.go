package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"banger/internal/iox"
)

// forwardPrevPath records the IPv4 forwarding value found before a banger
// daemon turned it on; it exists only while that change is in force. It is
// the host's, shared by every daemon (each with its own bridge and state),
// so the one that needs forwarding last restores it, whichever turned it on.
func (m *Manager) forwardPrevPath() string {
	return filepath.Join(m.cfg.HostRunDir, "ip_forward.prev")
}

// legacyForwardPrevPath is where a daemon before the shared record kept its
// own; it is taken over when found.
func (m *Manager) legacyForwardPrevPath() string {
	return filepath.Join(m.cfg.StateDir, "network", "ip_forward.prev")
}

// setForwarding turns IPv4 forwarding on when needed (at least one NAT VM),
// remembering the previous value, and restores that value when neither
// this Manager nor another banger table (another bridge's daemon) has NAT
// VMs. A host that already forwarded before banger is left alone. The
// daemons of a host take turns (a lock beside the record), so one never
// restores the value while another is turning forwarding on for its VM.
func (m *Manager) setForwarding(needed bool) error {
	unlock, err := lockHostRunDir(m.cfg.HostRunDir)
	if err != nil {
		return fmt.Errorf("ip forwarding: %w", err)
	}
	defer unlock()
	if err := m.takeOverLegacyRecord(); err != nil {
		return err
	}
	cur, err := os.ReadFile(m.forwardPath)
	if err != nil {
		return fmt.Errorf("read ip forwarding: %w", err)
	}
	current := strings.TrimSpace(string(cur))
	prevPath := m.forwardPrevPath()
	prev, err := os.ReadFile(prevPath)
	recorded := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", prevPath, err)
	}
	if needed {
		if current == "1" {
			return nil
		}
		if !recorded {
			if err := writeFileAtomic(prevPath, []byte(current+"\n")); err != nil {
				return fmt.Errorf("record ip forwarding: %w", err)
			}
		}
		if err := os.WriteFile(m.forwardPath, []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("enable ip forwarding: %w", err)
		}
		m.log.Info("enabled IPv4 forwarding for NAT", "previous", current)
		return nil
	}
	if !recorded {
		return nil
	}
	// Another banger daemon (another bridge) may still have NAT VMs: keep
	// forwarding on for it, and the record, for the last one to restore.
	others, err := m.otherNATTables()
	if err != nil {
		return fmt.Errorf("restore ip forwarding: %w", err)
	}
	if len(others) > 0 {
		m.log.Info("keeping IPv4 forwarding on for other banger bridges", "tables", others)
		return nil
	}
	old := strings.TrimSpace(string(prev))
	if old != current && (old == "0" || old == "1") {
		if err := os.WriteFile(m.forwardPath, []byte(old+"\n"), 0o644); err != nil {
			return fmt.Errorf("restore ip forwarding to %s: %w", old, err)
		}
		m.log.Info("restored IPv4 forwarding", "value", old)
	}
	if err := os.Remove(prevPath); err != nil {
		return fmt.Errorf("restore ip forwarding: %w", err)
	}
	return nil
}

// takeOverLegacyRecord moves a record kept in this daemon's state (by an
// earlier version) to the host's, unless the host's already has one.
func (m *Manager) takeOverLegacyRecord() error {
	legacy := m.legacyForwardPrevPath()
	data, err := os.ReadFile(legacy)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", legacy, err)
	}
	if _, err := os.Stat(m.forwardPrevPath()); errors.Is(err, fs.ErrNotExist) {
		if err := writeFileAtomic(m.forwardPrevPath(), data); err != nil {
			return fmt.Errorf("record ip forwarding: %w", err)
		}
	}
	if err := os.Remove(legacy); err != nil {
		return fmt.Errorf("take over %s: %w", legacy, err)
	}
	return nil
}

// lockHostRunDir makes dir (root's, 0700) when missing and takes its lock,
// which every daemon of the host takes before touching what dir holds.
func lockHostRunDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if err := iox.OwnDir(dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// writeFileAtomic writes data to path through a temporary file.
func writeFileAtomic(path string, data []byte) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
