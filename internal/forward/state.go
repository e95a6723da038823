package forward

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"banger/internal/api"
)

// StateFile is the file in a VM's folder holding its forwards and mode. It
// lives and dies with the VM's folder (root's, 0700).
const StateFile = "forwards.json"

// savedState is what persists of a VM's forwards.
type savedState struct {
	Mode     string         `json:"mode,omitempty"`
	Remap    bool           `json:"remap,omitempty"`
	Forwards []savedForward `json:"forwards,omitempty"`
}

// savedForward is one explicit forward. HostAddr "" means 127.0.0.1 and
// ::1 (when the host has it). HostPort is the port in use (after a remap).
type savedForward struct {
	HostAddr  string `json:"host_addr,omitempty"`
	HostPort  int    `json:"host_port,omitempty"`
	GuestPort int    `json:"guest_port"`
	// A Unix socket forward: its path and who made it (it is made again
	// as them after a daemon restart).
	UnixPath string `json:"unix_path,omitempty"`
	UnixUID  int    `json:"unix_uid,omitempty"`
	UnixGID  int    `json:"unix_gid,omitempty"`
}

func (f savedForward) addrs(has6 bool) []netip.Addr {
	if f.HostAddr != "" {
		if a, err := netip.ParseAddr(f.HostAddr); err == nil && a.IsLoopback() {
			return []netip.Addr{a}
		}
	}
	return loopbacks(has6, true)
}

// loopbacks is 127.0.0.1, plus ::1 when want6 and the host has it.
func loopbacks(has6, want6 bool) []netip.Addr {
	out := []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}
	if has6 && want6 {
		out = append(out, netip.IPv6Loopback())
	}
	return out
}

// readState reads a VM's saved forwards; none saved is the zero state.
func readState(dir string) (savedState, error) {
	var s savedState
	if dir == "" {
		return s, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read forwards: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("read forwards %s: %w", filepath.Join(dir, StateFile), err)
	}
	if s.Mode != "" && s.Mode != api.ForwardAuto && s.Mode != api.ForwardOff {
		s.Mode = api.ForwardOff
	}
	return s, nil
}

// writeState saves a VM's forwards atomically (temporary file, rename) in
// its root-only folder.
func writeState(dir string, s savedState) error {
	if dir == "" {
		return errors.New("save forwards: the vm has no folder")
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("save forwards: %w", err)
	}
	tmp := filepath.Join(dir, "."+StateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save forwards: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, StateFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save forwards: %w", err)
	}
	return nil
}
