package daemon

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// DefaultSocketGroup is the group given the socket when it exists and no
// other group is asked for.
const DefaultSocketGroup = "banger"

// listen creates the API socket: mode 0660 with group (DefaultSocketGroup
// when group is empty) when that group exists, 0600 otherwise. A group asked
// for by name must exist. Never world-writable. The caller holds the state
// lock, so a leftover socket file is stale and removed.
func listen(path, group string) (net.Listener, string, error) {
	required := group != ""
	if !required {
		group = DefaultSocketGroup
	}
	g, gerr := user.LookupGroup(group)
	if gerr != nil && required {
		return nil, "", fmt.Errorf("socket group %q: %w", group, gerr)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, "", fmt.Errorf("create socket folder: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, "", fmt.Errorf("socket path %s exists and is not a socket: remove it or pass --socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, "", fmt.Errorf("another daemon is already listening on %s", path)
		}
		os.Remove(path)
	}
	// Create the socket owner-only from the start (no window where the
	// umask leaves it open), then widen to the group below.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	mode, access := os.FileMode(0o600), "owner only (mode 0600)"
	if gerr == nil {
		gid, err := strconv.Atoi(g.Gid)
		if err == nil {
			err = os.Chown(path, -1, gid)
		}
		switch {
		case err == nil:
			mode, access = 0o660, fmt.Sprintf("group %s (mode 0660)", group)
		case required:
			ln.Close()
			return nil, "", fmt.Errorf("socket group %q: %w", group, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, "", fmt.Errorf("chmod socket: %w", err)
	}
	return ln, access, nil
}
