package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// forwardPrevPath records the IPv4 forwarding value found before banger
// turned it on; it exists only while banger's change is in force.
func (m *Manager) forwardPrevPath() string {
	return filepath.Join(m.cfg.StateDir, "network", "ip_forward.prev")
}

// setForwarding turns IPv4 forwarding on when needed (at least one NAT VM),
// remembering the previous value, and restores that value when neither
// this Manager nor another banger table (another bridge's daemon) has NAT
// VMs. A host that already forwards is left alone.
func (m *Manager) setForwarding(needed bool) error {
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
	// forwarding on for it, and the record, to restore once none needs it.
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
