package forward

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/authz"
)

// A Unix socket forward listens on a socket the caller's own process makes
// (authz.ListenUnix: mode 0600, owned by the caller, created where the
// caller may create files); the daemon never creates or follows the path
// itself. File permissions, not an nftables rule, keep others out.

// listenUnix makes l's socket as c; m.mu held.
func (m *Manager) listenUnix(ctx context.Context, l *listener, c authz.Caller) error {
	f, err := authz.ListenUnix(ctx, c, l.unixPath)
	if err != nil {
		return err
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("listen %s: %w", l.unixPath, err)
	}
	l.mu.Lock()
	l.lns = append(l.lns, ln)
	l.mu.Unlock()
	go l.accept(ln)
	return nil
}

// addUnix makes an explicit Unix socket forward; m.mu held.
func (m *Manager) addUnix(ctx context.Context, st *vmState, p api.VMForwardParams) (api.VMForward, error) {
	path := filepath.Clean(p.UnixPath)
	if !filepath.IsAbs(path) {
		return api.VMForward{}, api.Errorf(api.ErrInvalid, "unix socket path %q must be absolute", p.UnixPath)
	}
	for _, o := range m.byVM {
		for _, l := range o.fixed {
			if l.unixPath == path {
				return api.VMForward{}, api.Errorf(api.ErrExists, "%s is already a forward (of vm %q)", path, o.name)
			}
		}
	}
	c := authz.CallerFrom(ctx)
	l := m.newListener(st, nil, 0, p.GuestPort, false)
	l.unixPath = path
	if err := m.listenUnix(ctx, l, c); err != nil {
		return api.VMForward{}, err
	}
	sf := savedForward{UnixPath: path, UnixUID: c.UID, UnixGID: c.GID, GuestPort: p.GuestPort}
	st.fixed = append(st.fixed, l)
	st.saved.Forwards = append(st.saved.Forwards, sf)
	if err := writeState(st.dir, st.saved); err != nil {
		m.removeFixed(ctx, st, func(l *listener) bool { return l.unixPath == path })
		return api.VMForward{}, err
	}
	m.log.Info("forward added", "vm", st.name, "unix", path, "guest", l.guestPort)
	return l.view(), nil
}

// unixCaller is who made a saved Unix socket forward.
func (f savedForward) unixCaller() authz.Caller {
	return authz.Caller{UID: f.UnixUID, GID: f.UnixGID}
}
