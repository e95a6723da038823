package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/vmm/qemu"

	"golang.org/x/crypto/ssh"
)

// List returns every VM; one its VMM paused on a host I/O error shows as
// paused, with the reason.
func (m *Manager) List(ctx context.Context) ([]model.VMRecord, error) {
	vms, err := m.store.ListVMs(ctx)
	for i := range vms {
		m.observe(ctx, &vms[i])
	}
	return vms, err
}

// Show returns one VM (paused with the reason, like List).
func (m *Manager) Show(ctx context.Context, ref string) (model.VMRecord, error) {
	vm, err := m.store.GetVM(ctx, ref)
	if err == nil {
		m.observe(ctx, &vm)
	}
	return vm, err
}

// running loads a VM and fails clearly unless it runs.
func (m *Manager) running(ctx context.Context, ref string) (model.VMRecord, error) {
	vm, err := m.store.GetVM(ctx, ref)
	if err != nil {
		return vm, err
	}
	if vm.State == model.VMSuspended {
		return vm, suspendedError(vm)
	}
	if vm.State != model.VMRunning {
		return vm, api.Errorf(api.ErrConflict, "vm %q is %s: start it with 'banger vm start %s'", vm.Name, vm.State, vm.Name)
	}
	if m.observe(ctx, &vm); vm.State == model.VMPaused {
		return vm, pausedError(vm)
	}
	return vm, nil
}

// guestTimeout bounds one guest round trip.
func (m *Manager) guestTimeout() time.Duration {
	if m.cfg.GuestTimeout > 0 {
		return m.cfg.GuestTimeout
	}
	return guest.DefaultCallTimeout
}

// guestErr marks a guest round trip that ran out of time as unavailable
// (a frozen or overloaded guest), keeping what was asked in the message.
func guestErr(err error, format string, args ...any) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return api.Errorf(api.ErrUnavailable, "%s: %v", fmt.Sprintf(format, args...), err)
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// Guest dials a running VM's agent. Every call on the returned client has
// the manager's guest deadline; no manager-wide lock is held while a
// guest answers, so a stuck guest holds only the requests about it.
func (m *Manager) Guest(ctx context.Context, ref string) (*guest.Client, model.VMRecord, error) {
	vm, err := m.running(ctx, ref)
	if err != nil {
		return nil, vm, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := guest.Dial(dctx, sshAddr(vm), m.signer, vm.SSHHostKey)
	if err != nil {
		return nil, vm, api.Errorf(api.ErrUnavailable, "vm %q: guest agent unreachable: %v", vm.Name, err)
	}
	c.CallTimeout = m.guestTimeout()
	return c, vm, nil
}

// Stats returns resource use.
func (m *Manager) Stats(ctx context.Context, ref string) (model.VMRecord, model.VMStats, error) {
	vm, err := m.store.GetVM(ctx, ref)
	if err != nil {
		return vm, model.VMStats{}, err
	}
	overlay, work := filepath.Join(vm.Dir, paths.VMOverlay), filepath.Join(vm.Dir, paths.VMWorkDisk)
	m.observe(ctx, &vm)
	st := model.VMStats{State: vm.State, OverlaySizeBytes: fileSize(overlay), WorkDiskSizeBytes: fileSize(work),
		OverlayAllocBytes: allocated(overlay), WorkDiskAllocBytes: allocated(work)}
	if vm.State != model.VMRunning && vm.State != model.VMPaused && vm.State != model.VMSuspended {
		return vm, st, nil
	}
	if vm.StartedAt != nil {
		st.UptimeSeconds = time.Since(*vm.StartedAt).Seconds()
	}
	if vm.PID > 0 {
		st.VMMCPUSeconds, st.VMMRSSBytes, _ = qemu.ProcStats(vm.PID)
	}
	if c, _, err := m.Guest(ctx, vm.ID); err == nil {
		if du, err := c.DiskUsage(ctx); err == nil {
			st.OverlayUsedBytes, st.WorkDiskUsedBytes = int64(du.Root.UsedBytes), int64(du.Work.UsedBytes)
		}
		c.Close()
	}
	return vm, st, nil
}

// Logs returns the serial console log path.
func (m *Manager) Logs(ctx context.Context, ref string) (string, error) {
	vm, err := m.store.GetVM(ctx, ref)
	if err != nil {
		return "", err
	}
	return filepath.Join(vm.Dir, paths.VMSerialLog), nil
}

// SSH says where the guest's SSH server is.
func (m *Manager) SSH(ctx context.Context, ref string) (api.VMSSHResult, error) {
	vm, err := m.running(ctx, ref)
	if err != nil {
		return api.VMSSHResult{}, err
	}
	return api.VMSSHResult{Name: vm.Name, GuestIP: vm.GuestIP}, nil
}

// AuthorizeKey lets a caller's public key log in: recorded for future boots
// and pushed to the running guest.
func (m *Manager) AuthorizeKey(ctx context.Context, p api.VMAuthorizeKeyParams) (api.VMAuthorizeKeyResult, error) {
	line, err := authorizedKeyLine(p.PublicKey)
	if err != nil {
		return api.VMAuthorizeKeyResult{}, err
	}
	c, vm, err := m.Guest(ctx, p.IDOrName)
	if err != nil {
		return api.VMAuthorizeKeyResult{}, err
	}
	defer c.Close()
	if err := c.AuthorizeKey(ctx, line); err != nil {
		return api.VMAuthorizeKeyResult{}, guestErr(err, "authorize key in vm %q", vm.Name)
	}
	unlock := m.lock(vm.ID)
	if cur, err := m.store.GetVM(ctx, vm.ID); err == nil {
		known := false
		for _, k := range cur.AuthorizedKeys {
			if sameKey(k, line) {
				known = true
			}
		}
		if !known {
			cur.AuthorizedKeys = append(cur.AuthorizedKeys, line)
			m.store.UpdateVM(ctx, cur)
		}
	}
	unlock()
	host, port, _ := net.SplitHostPort(sshAddr(vm))
	pn, _ := strconv.Atoi(port)
	return api.VMAuthorizeKeyResult{Name: vm.Name, Host: host, Port: pn, HostKey: vm.SSHHostKey, DNSName: vm.DNSName}, nil
}

// authorizedKeyLine validates one authorized_keys line and normalises it.
func authorizedKeyLine(key string) (string, error) {
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil || len(strings.TrimSpace(string(rest))) > 0 {
		return "", api.Errorf(api.ErrInvalid, "public key %.40q is not one authorized_keys line", key)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		line += " " + comment
	}
	return line, nil
}

func sameKey(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	return len(fa) >= 2 && len(fb) >= 2 && fa[0] == fb[0] && fa[1] == fb[1]
}

// MaxClockSkew is how far the guest clock may be from the host's.
const MaxClockSkew = time.Second

// Health runs the guest's checks and the clock comparison.
func (m *Manager) Health(ctx context.Context, ref string) (api.VMHealthResult, error) {
	vm, err := m.running(ctx, ref)
	if vm.State == model.VMPaused {
		return api.VMHealthResult{Name: vm.Name, Checks: []api.VMHealthCheck{{Name: "vm", OK: false, Detail: pausedError(vm).Error()}}}, nil
	}
	if err != nil {
		return api.VMHealthResult{Name: vm.Name}, err
	}
	res := api.VMHealthResult{Name: vm.Name}
	c, _, err := m.Guest(ctx, vm.ID)
	if err != nil {
		res.Checks = []api.VMHealthCheck{{Name: "agent", OK: false, Detail: err.Error()}}
		return res, nil
	}
	defer c.Close()
	sent := time.Now()
	h, err := c.Health(ctx)
	if err != nil {
		res.Checks = []api.VMHealthCheck{{Name: "agent", OK: false, Detail: err.Error()}}
		return res, nil
	}
	mid := sent.Add(time.Since(sent) / 2)
	res.Healthy = true
	for _, ch := range h.Checks {
		if ch.Name == "clock" {
			continue
		}
		res.Checks = append(res.Checks, api.VMHealthCheck{Name: ch.Name, OK: ch.OK, Detail: ch.Detail})
		res.Healthy = res.Healthy && ch.OK
	}
	skew := time.Duration(h.TimeUnixNano - mid.UnixNano())
	clock := api.VMHealthCheck{Name: "clock", OK: skew.Abs() <= MaxClockSkew, Detail: fmt.Sprintf("guest clock %+v from the host's", skew.Round(time.Millisecond))}
	res.Checks = append(res.Checks, clock)
	res.Healthy = res.Healthy && clock.OK
	return res, nil
}

// Ping checks the VM answers on its network address (TCP to its SSH port).
func (m *Manager) Ping(ctx context.Context, ref string) (api.VMPingResult, error) {
	vm, err := m.running(ctx, ref)
	if err != nil {
		return api.VMPingResult{Name: vm.Name}, err
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", sshAddr(vm))
	if err != nil {
		return api.VMPingResult{Name: vm.Name, Alive: false}, nil
	}
	conn.Close()
	return api.VMPingResult{Name: vm.Name, Alive: true}, nil
}

// Ports lists the guest's listening sockets with endpoints.
func (m *Manager) Ports(ctx context.Context, ref string) (api.VMPortsResult, error) {
	c, vm, err := m.Guest(ctx, ref)
	if err != nil {
		return api.VMPortsResult{}, err
	}
	defer c.Close()
	ports, err := c.Ports(ctx)
	if err != nil {
		return api.VMPortsResult{}, guestErr(err, "ports of vm %q", vm.Name)
	}
	host := vm.DNSName
	if host == "" {
		host = vm.GuestIP
	}
	for i := range ports {
		switch {
		case isLoopback(ports[i].BindAddress):
			ports[i].Endpoint = "(guest loopback only: not reachable from the host)"
		case vm.Network == "user":
			ports[i].Endpoint = "(user-mode networking: not reachable from the host)"
		default:
			ports[i].Endpoint = net.JoinHostPort(host, strconv.Itoa(ports[i].Port))
		}
	}
	return api.VMPortsResult{Name: vm.Name, DNSName: vm.DNSName, Ports: ports}, nil
}

func isLoopback(addr string) bool {
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsLoopback()
}
