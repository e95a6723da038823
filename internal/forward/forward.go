// Package forward carries TCP connections from the host's loopback to
// guest ports: explicit forwards (`vm forward`) and automatic ones (`vm
// create|set --forward auto`, following the guest's listeners as the agent
// reports them). The daemon listens on 127.0.0.1 (and ::1) and carries each
// connection through the VM's agent as an SSH direct-tcpip channel to the
// guest's own bind address, so guest-loopback listeners and user-mode
// networking work too. Each listening port has a kernel-enforced owner rule
// (network.OwnerRules): only the VM owner's sockets and root's may connect.
package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/network"

	"golang.org/x/crypto/ssh"
)

// VMs reads VM records (the daemon's store).
type VMs interface {
	GetVM(ctx context.Context, ref string) (model.VMRecord, error)
	ListVMs(ctx context.Context) ([]model.VMRecord, error)
}

// Rules installs the owner rules of every listening host port.
type Rules interface {
	Set(owners []network.PortOwner) error
}

// Dialer connects to a VM's agent.
type Dialer func(ctx context.Context, vm model.VMRecord) (*guest.Client, error)

// Manager owns every forward of the daemon.
type Manager struct {
	vms   VMs
	rules Rules
	dial  Dialer
	log   *slog.Logger
	base  context.Context
	// has6 says whether the host has IPv6 loopback (::1).
	has6 bool

	mu   sync.Mutex
	byVM map[string]*vmState
}

// vmState is one VM's forwards.
type vmState struct {
	id, name string
	owner    int
	dir      string
	saved    savedState
	fixed    []*listener           // explicit, in the order made
	auto     map[int]*listener     // guest port -> auto forward
	conflict map[int]api.VMForward // guest port -> auto forward not made
	stopAuto context.CancelFunc
	lastSnap []proto.Listener // the guest's listeners as last reported
	guest    guestCache
	sem      semaphore
}

// New returns a manager; Load brings back the saved forwards.
func New(base context.Context, vms VMs, rules Rules, dial Dialer, log *slog.Logger) *Manager {
	return &Manager{vms: vms, rules: rules, dial: dial, log: log, base: base,
		has6: ipv6Loopback(), byVM: map[string]*vmState{}}
}

// SSHDialer dials a VM's agent with the daemon's identity, pinning its
// host key.
func SSHDialer(signer ssh.Signer) Dialer {
	return func(ctx context.Context, vm model.VMRecord) (*guest.Client, error) {
		addr := net.JoinHostPort(vm.GuestIP, "22")
		if vm.Network == "user" {
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(vm.SSHPort))
		}
		return guest.Dial(ctx, addr, signer, vm.SSHHostKey)
	}
}

// Load brings back every VM's saved forwards and mode (daemon start). A
// forward whose host port is now busy is kept and reported as a conflict.
func (m *Manager) Load(ctx context.Context) error {
	vms, err := m.vms.ListVMs(ctx)
	if err != nil {
		return fmt.Errorf("load forwards: %w", err)
	}
	for _, vm := range vms {
		saved, err := readState(vm.Dir)
		if err != nil {
			m.log.Warn("load forwards", "vm", vm.Name, "err", err)
			continue
		}
		if len(saved.Forwards) == 0 && saved.Mode != api.ForwardAuto {
			continue
		}
		m.mu.Lock()
		st := m.state(vm)
		st.saved = saved
		for _, f := range saved.Forwards {
			if f.UnixPath != "" {
				l := m.newListener(st, nil, 0, f.GuestPort, false)
				l.unixPath = f.UnixPath
				if err := m.listenUnix(ctx, l, f.unixCaller()); err != nil {
					l.conflict = err.Error()
					m.log.Warn("forward not restored", "vm", vm.Name, "unix", f.UnixPath, "err", err)
				}
				st.fixed = append(st.fixed, l)
				continue
			}
			l := m.newListener(st, f.addrs(m.has6), f.HostPort, f.GuestPort, false)
			if err := m.open(l); err != nil {
				l.conflict = conflictText(err, f.HostPort, m.holder(f.HostPort, st.owner))
				m.log.Warn("forward not restored", "vm", vm.Name, "host_port", f.HostPort, "err", err)
			}
			st.fixed = append(st.fixed, l)
		}
		if saved.Mode == api.ForwardAuto {
			m.startAuto(st)
		}
		m.mu.Unlock()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.syncRulesLocked(); err != nil {
		// Without the owner rules no forward may listen.
		for _, st := range m.byVM {
			for _, l := range st.fixed {
				if l.unixPath == "" {
					l.close()
					l.conflict = err.Error()
				}
			}
		}
		return err
	}
	for _, st := range m.byVM {
		for _, l := range st.fixed {
			if l.conflict == "" && l.unixPath == "" {
				l.serve()
			}
		}
	}
	return nil
}

// state returns (making it) the state of vm; m.mu held.
func (m *Manager) state(vm model.VMRecord) *vmState {
	st, ok := m.byVM[vm.ID]
	if !ok {
		st = &vmState{id: vm.ID, auto: map[int]*listener{}, conflict: map[int]api.VMForward{}, sem: make(semaphore, MaxConns)}
		st.guest.m = m
		st.guest.vmID = vm.ID
		m.byVM[vm.ID] = st
	}
	st.name, st.owner, st.dir = vm.Name, vm.OwnerUID, vm.Dir
	return st
}

// Add makes an explicit forward and saves it with the VM.
func (m *Manager) Add(ctx context.Context, p api.VMForwardParams) (api.VMForward, error) {
	vm, err := m.vms.GetVM(ctx, p.IDOrName)
	if err != nil {
		return api.VMForward{}, err
	}
	if err := checkPort("guest port", p.GuestPort, false); err != nil {
		return api.VMForward{}, err
	}
	if p.UnixPath != "" {
		if p.HostPort != 0 || p.HostAddr != "" || p.Remap {
			return api.VMForward{}, api.Errorf(api.ErrInvalid, "a unix socket forward takes no host address, host port or remap")
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.addUnix(ctx, m.state(vm), p)
	}
	if p.HostPort == 0 && !p.Remap {
		p.HostPort = p.GuestPort
	}
	if err := checkPort("host port", p.HostPort, true); err != nil {
		return api.VMForward{}, err
	}
	if p.HostPort != 0 && p.HostPort < 1024 && !authz.CallerFrom(ctx).Root() {
		return api.VMForward{}, api.Errorf(api.ErrPermission, "host port %d: ports below 1024 are root's", p.HostPort)
	}
	sf := savedForward{HostAddr: p.HostAddr, HostPort: p.HostPort, GuestPort: p.GuestPort}
	if p.HostAddr != "" {
		a, err := netip.ParseAddr(p.HostAddr)
		if err != nil || !a.IsLoopback() || a.Zone() != "" {
			return api.VMForward{}, api.Errorf(api.ErrInvalid, "host address %q: only a loopback address (127.0.0.1, ::1) may be used: forwards are for this host only", p.HostAddr)
		}
		sf.HostAddr = a.Unmap().String()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.state(vm)
	for _, l := range st.fixed {
		if l.unixPath == "" && l.hostPort == p.HostPort && p.HostPort != 0 {
			return api.VMForward{}, api.Errorf(api.ErrExists, "vm %q already forwards host port %d (to guest port %d)", vm.Name, l.hostPort, l.guestPort)
		}
	}
	l := m.newListener(st, sf.addrs(m.has6), p.HostPort, p.GuestPort, false)
	err = m.open(l)
	if errors.Is(err, ErrBusy) && p.Remap {
		l.hostPort = 0
		err = m.open(l)
	}
	if err != nil {
		if errors.Is(err, ErrBusy) {
			return api.VMForward{}, api.Errorf(api.ErrConflict, "%s (use --remap to pick a free port)", conflictText(err, p.HostPort, m.holder(p.HostPort, st.owner)))
		}
		return api.VMForward{}, fmt.Errorf("forward host port %d to vm %q: %w", p.HostPort, vm.Name, err)
	}
	sf.HostPort = l.hostPort
	st.fixed = append(st.fixed, l)
	st.saved.Forwards = append(st.saved.Forwards, sf)
	byPort := func(x *listener) bool { return x == l }
	if err := m.syncRulesLocked(); err != nil {
		m.removeFixed(ctx, st, byPort)
		return api.VMForward{}, err
	}
	if err := writeState(st.dir, st.saved); err != nil {
		m.removeFixed(ctx, st, byPort)
		m.syncRulesLocked()
		return api.VMForward{}, err
	}
	l.serve()
	m.log.Info("forward added", "vm", vm.Name, "host", l.hostPort, "guest", l.guestPort)
	return l.view(), nil
}

// Remove ends the explicit forward on hostPort.
func (m *Manager) Remove(ctx context.Context, p api.VMForwardRemoveParams) error {
	vm, err := m.vms.GetVM(ctx, p.IDOrName)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.byVM[vm.ID]
	match := func(l *listener) bool { return l.unixPath == "" && l.hostPort == p.HostPort }
	what := fmt.Sprintf("host port %d", p.HostPort)
	if p.UnixPath != "" {
		path := filepath.Clean(p.UnixPath)
		match = func(l *listener) bool { return l.unixPath == path }
		what = path
	}
	if st == nil || !m.removeFixed(ctx, st, match) {
		return api.Errorf(api.ErrNotFound, "vm %q has no forward on %s", vm.Name, what)
	}
	if err := writeState(st.dir, st.saved); err != nil {
		return err
	}
	return m.syncRulesLocked()
}

// removeFixed closes and forgets the explicit forward match picks (a Unix
// socket forward's socket is removed as its maker); m.mu held.
func (m *Manager) removeFixed(ctx context.Context, st *vmState, match func(*listener) bool) bool {
	for i, l := range st.fixed {
		if !match(l) {
			continue
		}
		l.close()
		st.fixed = append(st.fixed[:i], st.fixed[i+1:]...)
		for j, f := range st.saved.Forwards {
			if (l.unixPath != "" && f.UnixPath == l.unixPath) || (l.unixPath == "" && f.UnixPath == "" && f.HostPort == l.hostPort) {
				st.saved.Forwards = append(st.saved.Forwards[:j], st.saved.Forwards[j+1:]...)
				if l.unixPath != "" {
					if err := authz.RemoveSocket(ctx, f.unixCaller(), l.unixPath); err != nil {
						m.log.Warn("remove forward socket", "path", l.unixPath, "err", err)
					}
				}
				break
			}
		}
		return true
	}
	return false
}

// List returns a VM's forwards.
func (m *Manager) List(ctx context.Context, ref string) (api.VMForwardListResult, error) {
	vm, err := m.vms.GetVM(ctx, ref)
	if err != nil {
		return api.VMForwardListResult{}, err
	}
	res := api.VMForwardListResult{Name: vm.Name, Mode: api.ForwardOff, Forwards: []api.VMForward{}}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.byVM[vm.ID]
	if st == nil {
		return res, nil
	}
	if st.saved.Mode != "" {
		res.Mode = st.saved.Mode
	}
	res.Remap = st.saved.Remap
	res.Forwards = append(res.Forwards, st.views()...)
	return res, nil
}

// Of is the forwards of the VM with this id (nil when it has none), for
// vm list and vm show: it reads no record, so listing many VMs stays cheap.
func (m *Manager) Of(vmID string) []api.VMForward {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.byVM[vmID]; st != nil {
		return st.views()
	}
	return nil
}

// views is what List shows of st: explicit forwards first, then auto ones
// and auto conflicts by guest port. Called with the manager's lock held.
func (st *vmState) views() []api.VMForward {
	var out []api.VMForward
	for _, l := range st.fixed {
		out = append(out, l.view())
	}
	var auto []api.VMForward
	for _, l := range st.auto {
		auto = append(auto, l.view())
	}
	for _, c := range st.conflict {
		auto = append(auto, c)
	}
	sort.Slice(auto, func(i, j int) bool { return auto[i].GuestPort < auto[j].GuestPort })
	return append(out, auto...)
}

// DropVM ends every forward of a deleted VM.
func (m *Manager) DropVM(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.byVM[id]
	if st == nil {
		return
	}
	m.stopAutoLocked(st)
	for _, l := range st.fixed {
		l.close()
		if l.unixPath != "" {
			for _, f := range st.saved.Forwards {
				if f.UnixPath == l.unixPath {
					authz.RemoveSocket(m.base, f.unixCaller(), l.unixPath)
				}
			}
		}
	}
	st.guest.reset()
	delete(m.byVM, id)
	if err := m.syncRulesLocked(); err != nil {
		m.log.Warn("owner rules", "err", err)
	}
}

// Close ends every forward (daemon shutdown). Saved forwards stay saved.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range m.byVM {
		m.stopAutoLocked(st)
		for _, l := range st.fixed {
			l.close()
		}
		st.guest.reset()
	}
	m.byVM = map[string]*vmState{}
	if err := m.rules.Set(nil); err != nil {
		m.log.Warn("owner rules", "err", err)
	}
}

// syncRules installs the owner rules of every listening port.
func (m *Manager) syncRules() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncRulesLocked()
}

func (m *Manager) syncRulesLocked() error {
	var owners []network.PortOwner
	for _, st := range m.byVM {
		for _, l := range st.all() {
			if l.unixPath == "" && l.reserved() {
				owners = append(owners, network.PortOwner{Port: uint16(l.hostPort), UID: uint32(st.owner)})
			}
		}
	}
	if err := m.rules.Set(owners); err != nil {
		return fmt.Errorf("cannot enforce owner-only access to forwards: %w", err)
	}
	return nil
}

func (st *vmState) all() []*listener {
	out := append([]*listener(nil), st.fixed...)
	for _, l := range st.auto {
		out = append(out, l)
	}
	return out
}

// holder names who holds host port for a VM owned by uid: a VM (by name
// when uid owns it too), or a host process; m.mu held.
func (m *Manager) holder(port, uid int) string {
	for _, st := range m.byVM {
		for _, l := range st.all() {
			if l.unixPath == "" && l.hostPort == port && l.reserved() {
				if st.owner != uid {
					return "another user's vm"
				}
				return fmt.Sprintf("vm %q", st.name)
			}
		}
	}
	return "a host process"
}

func conflictText(err error, port int, holder string) string {
	if errors.Is(err, ErrBusy) {
		return fmt.Sprintf("host port %d is held by %s", port, holder)
	}
	return err.Error()
}

// checkPort validates a port number; zero is allowed when zeroOK.
func checkPort(what string, p int, zeroOK bool) error {
	if (p == 0 && zeroOK) || (p > 0 && p < 65536) {
		return nil
	}
	return api.Errorf(api.ErrInvalid, "%s %d: must be 1 to 65535", what, p)
}

// Log is the manager's logger.
func (m *Manager) Log() *slog.Logger { return m.log }
