package forward

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/api"
)

// Ports auto mode never forwards: privileged ports, SSH, DNS, DHCP, NTP,
// chrony, mDNS, LLMNR.
var autoExcluded = map[int]bool{22: true, 53: true, 68: true, 123: true, 323: true, 5353: true, 5355: true}

// autoAllowed reports whether auto mode forwards guest port p.
func autoAllowed(p int) bool { return p >= 1024 && p <= 65535 && !autoExcluded[p] }

// maxSnapshotLine bounds one line of the agent's watch stream.
const maxSnapshotLine = 1 << 20

// MaxAuto bounds the auto forwards of one VM: a guest cannot take more
// host ports than this; further listeners are reported as conflicts.
const MaxAuto = 64

// minApplyGap spaces the snapshots a guest can make the host act on.
const minApplyGap = 100 * time.Millisecond

// retryEvery is how long the watcher waits before watching again (the VM
// was stopped, or the stream broke). It reads only the host's store.
const retryEvery = 2 * time.Second

// SetMode sets a VM's forward mode ("auto" or "off") and, when remap is
// given, whether auto mode picks free host ports for busy ones.
func (m *Manager) SetMode(ctx context.Context, ref, mode string, remap *bool) error {
	if mode != "" && mode != api.ForwardAuto && mode != api.ForwardOff {
		return api.Errorf(api.ErrInvalid, "forward mode %q: use auto or off", mode)
	}
	vm, err := m.vms.GetVM(ctx, ref)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.state(vm)
	next := st.saved
	if mode != "" {
		next.Mode = mode
	}
	if remap != nil {
		next.Remap = *remap
	}
	if err := writeState(st.dir, next); err != nil {
		return err
	}
	remapChanged := next.Remap != st.saved.Remap
	st.saved = next
	if next.Mode == api.ForwardAuto && remapChanged {
		m.stopAutoLocked(st)
	}
	if next.Mode == api.ForwardAuto {
		m.startAuto(st)
	} else {
		m.stopAutoLocked(st)
		return m.syncRulesLocked()
	}
	return nil
}

// ValidMode checks a forward mode given to create.
func ValidMode(mode string) error {
	if mode != "" && mode != api.ForwardAuto && mode != api.ForwardOff {
		return api.Errorf(api.ErrInvalid, "forward mode %q: use auto or off", mode)
	}
	return nil
}

// startAuto starts watching the guest's listeners; m.mu held.
func (m *Manager) startAuto(st *vmState) {
	if st.stopAuto != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.base)
	st.stopAuto = cancel
	go m.watch(ctx, st)
}

// stopAutoLocked stops watching and ends every auto forward; m.mu held.
func (m *Manager) stopAutoLocked(st *vmState) {
	if st.stopAuto != nil {
		st.stopAuto()
		st.stopAuto = nil
	}
	for p, l := range st.auto {
		l.close()
		delete(st.auto, p)
	}
	clear(st.conflict)
	st.lastSnap = nil
}

func (m *Manager) watch(ctx context.Context, st *vmState) {
	for ctx.Err() == nil {
		err := m.watchOnce(ctx, st)
		if ctx.Err() != nil {
			return
		}
		m.log.Debug("port watch ended", "vm", st.name, "err", err)
		m.applyAuto(ctx, st, nil)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryEvery):
		}
	}
}

// watchOnce follows the agent's listener stream while the VM's boot lasts.
func (m *Manager) watchOnce(ctx context.Context, st *vmState) error {
	gctx, cancel := context.WithTimeout(ctx, openTimeout)
	gc, err := st.guest.get(gctx)
	cancel()
	if err != nil {
		return err
	}
	vm, err := m.vms.GetVM(ctx, st.id)
	if err != nil {
		return err
	}
	boot := bootKey(vm)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	// The stream lives as long as this boot: a stopped or restarted VM (or
	// an ended watch) closes the agent connection, which ends the read.
	go func() {
		t := time.NewTicker(retryEvery)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			cur, err := m.vms.GetVM(wctx, st.id)
			if wctx.Err() != nil {
				return
			}
			if err != nil || bootKey(cur) != boot || cur.State != vm.State {
				st.guest.drop(gc)
				return
			}
			m.retryConflicts(wctx, st)
		}
	}()
	go func() {
		<-wctx.Done()
		if ctx.Err() != nil {
			st.guest.drop(gc)
		}
	}()
	sess, err := gc.SSH().NewSession()
	if err != nil {
		st.guest.drop(gc)
		return fmt.Errorf("port watch: %w", err)
	}
	defer sess.Close()
	out, err := sess.StdoutPipe()
	if err != nil {
		return fmt.Errorf("port watch: %w", err)
	}
	if err := sess.RequestSubsystem(proto.WatchSubsystem); err != nil {
		return fmt.Errorf("port watch: %w", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), maxSnapshotLine)
	var last time.Time
	for sc.Scan() {
		if gap := time.Since(last); gap < minApplyGap {
			time.Sleep(minApplyGap - gap)
		}
		last = time.Now()
		var snap proto.ListenSnapshot
		if err := json.Unmarshal(sc.Bytes(), &snap); err != nil {
			return fmt.Errorf("port watch: bad line from the agent: %w", err)
		}
		if len(snap.Listeners) > proto.MaxWatchListeners {
			return fmt.Errorf("port watch: %d listeners, more than %d", len(snap.Listeners), proto.MaxWatchListeners)
		}
		m.applyAuto(ctx, st, snap.Listeners)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("port watch: %w", err)
	}
	return errors.New("port watch: the agent ended the stream")
}

// want is what auto mode makes of one guest port.
type want struct {
	host  string // guest address to connect to
	want6 bool   // also listen on ::1 (the guest side is IPv6 or a wildcard)
}

// autoWants picks the guest ports auto mode forwards from a snapshot.
func autoWants(ls []proto.Listener) map[int]want {
	out := map[int]want{}
	for _, l := range ls {
		a, err := netip.ParseAddr(l.BindAddress)
		if err != nil || !autoAllowed(l.Port) {
			continue
		}
		w, seen := out[l.Port]
		h := connectHost(a.String())
		// Prefer an IPv4 target: it is what 127.0.0.1 clients expect.
		if !seen || (netip.MustParseAddr(w.host).Is6() && netip.MustParseAddr(h).Is4()) {
			w.host = h
		}
		if a.Is6() || a.IsUnspecified() {
			w.want6 = true
		}
		out[l.Port] = w
	}
	return out
}

// applyAuto makes the auto forwards follow the guest's listeners (nil: the
// guest is gone, so none). New ports get the same host port when it is
// free; a busy one is a conflict naming its holder, or with remap a free
// port. Ports an explicit forward already carries are left alone.
func (m *Manager) applyAuto(ctx context.Context, st *vmState, ls []proto.Listener) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ctx.Err() != nil {
		return // stopped: stopAutoLocked cleaned up
	}
	st.lastSnap = ls
	m.applyAutoLocked(st, ls)
}

// retryConflicts applies the last snapshot again when some of its ports
// were not forwarded (their host port may be free now): a local bind
// attempt, nothing asked of the guest.
func (m *Manager) retryConflicts(ctx context.Context, st *vmState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ctx.Err() != nil || len(st.conflict) == 0 {
		return
	}
	m.applyAutoLocked(st, st.lastSnap)
}

func (m *Manager) applyAutoLocked(st *vmState, ls []proto.Listener) {
	wants := autoWants(ls)
	for _, l := range st.fixed {
		delete(wants, l.guestPort)
	}
	changed := false
	for p, l := range st.auto {
		if w, ok := wants[p]; !ok || w.host != l.guestHost || (w.want6 != (len(l.addrs) > 1)) {
			l.close()
			delete(st.auto, p)
			changed = true
		}
	}
	clear(st.conflict)
	ports := make([]int, 0, len(wants))
	for p := range wants {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	var fresh []*listener
	for _, p := range ports {
		if _, ok := st.auto[p]; ok {
			continue
		}
		if len(st.auto) >= MaxAuto {
			st.conflict[p] = api.VMForward{HostPort: p, GuestPort: p, Auto: true, Conflict: fmt.Sprintf("not forwarded: a vm has at most %d auto forwards", MaxAuto)}
			continue
		}
		w := wants[p]
		l := m.newListener(st, loopbacks(m.has6, w.want6), p, p, true)
		l.guestHost = w.host
		err := m.open(l)
		if errors.Is(err, ErrBusy) && st.saved.Remap {
			l.hostPort = 0
			err = m.open(l)
		}
		if err != nil {
			st.conflict[p] = api.VMForward{HostPort: p, GuestPort: p, Auto: true, Conflict: conflictText(err, p, m.holder(p, st.owner))}
			continue
		}
		st.auto[p] = l
		fresh = append(fresh, l)
		changed = true
	}
	if !changed {
		return
	}
	if err := m.syncRulesLocked(); err != nil {
		m.log.Warn("auto forward", "vm", st.name, "err", err)
		for _, l := range fresh {
			l.close()
			delete(st.auto, l.guestPort)
			st.conflict[l.guestPort] = api.VMForward{HostPort: l.guestPort, GuestPort: l.guestPort, Auto: true, Conflict: err.Error()}
		}
		return
	}
	for _, l := range fresh {
		l.serve()
		m.log.Info("auto forward", "vm", st.name, "host", l.hostPort, "guest", l.guestPort)
	}
}

// Annotate fills each port's forward (or conflict) for `vm ports`.
func (m *Manager) Annotate(vmID string, ports []api.VMPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.byVM[vmID]
	if st == nil {
		return
	}
	for i := range ports {
		p := &ports[i]
		if p.Proto != "tcp" {
			continue
		}
		for _, l := range st.all() {
			if l.guestPort == p.Port && l.conflict == "" && l.reserved() {
				p.Forwarded = fmt.Sprintf("%s (%s)", hostAddrText(l), modeText(l.auto))
				break
			}
			if l.guestPort == p.Port && l.conflict != "" {
				p.ForwardConflict = l.conflict
			}
		}
		if c, ok := st.conflict[p.Port]; ok && p.Forwarded == "" {
			p.ForwardConflict = c.Conflict
		}
	}
}

func hostAddrText(l *listener) string {
	if l.unixPath != "" {
		return "unix:" + l.unixPath
	}
	ap := netip.AddrPortFrom(l.addrs[0], uint16(l.hostPort))
	return ap.String()
}

func modeText(auto bool) string {
	if auto {
		return "auto"
	}
	return "explicit"
}
