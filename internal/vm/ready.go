package vm

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/vmm"
)

// controlGrace is how long a boot waits for the agent's answer on the
// control port once the guest's SSH port accepts connections, before it
// also tries the agent over an SSH login (a variable for tests).
var controlGrace = 10 * time.Second

// waitAgent returns once the guest's agent is ready: it answered a health
// check on the VM's control port and took the host's clock there, and the
// guest's SSH port accepts the host's connections (the network path
// works). The health request is sent over the control port at once and
// answered the moment the agent serves; the SSH port is probed with plain
// TCP connections, so the guest's CPU is not spent on an SSH key exchange
// during boot. When the VM has no control port, or its agent has not
// answered there controlGrace after the SSH port opened, the agent is also
// checked as before (SSH login, health, clock), and the first to succeed
// wins.
func (m *Manager) waitAgent(ctx context.Context, vm *model.VMRecord) error {
	socket := filepath.Join(vm.Dir, paths.VMRunDir, vmm.ControlSocket)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		conn *guest.ControlConn
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		c, err := guest.DialControl(ctx, socket)
		if err == nil {
			if _, err = c.Health(ctx); err != nil {
				c.Close()
				c = nil
			}
		}
		answered <- answer{c, err}
	}()
	if err := guest.WaitReachable(ctx, sshAddr(*vm)); err != nil {
		return err
	}
	var overSSH chan error // set once the SSH check runs
	fallBack := func(why error) {
		if overSSH != nil {
			return
		}
		m.log.Warn("guest agent not ready on the control port; also checking it over SSH", "vm", vm.Name, "err", why)
		overSSH = make(chan error, 1)
		go func() { overSSH <- m.waitAgentSSH(ctx, vm) }()
	}
	grace := time.NewTimer(controlGrace)
	defer grace.Stop()
	for {
		select {
		case a := <-answered:
			if a.err != nil {
				answered = nil
				fallBack(a.err)
				continue
			}
			defer a.conn.Close()
			m.log.Debug("guest agent answered", "vm", vm.Name, "via", "control port")
			// The guest clock only has a floor from the boot config and
			// the RTC's whole seconds; set it from the host so health's
			// clock check holds. A failure leaves a working VM whose
			// health reports the clock.
			if err := a.conn.SetTime(ctx); err != nil {
				m.log.Warn("set the guest clock", "vm", vm.Name, "err", err)
			}
			m.log.Debug("guest clock set", "vm", vm.Name)
			return nil
		case <-grace.C:
			fallBack(fmt.Errorf("no answer within %s of the SSH port opening", controlGrace))
		case err := <-overSSH:
			return err
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// waitAgentSSH waits until the agent answers a health check over an SSH
// login, then sets the guest clock over it.
func (m *Manager) waitAgentSSH(ctx context.Context, vm *model.VMRecord) error {
	c, err := guest.WaitReady(ctx, sshAddr(*vm), m.signer, vm.SSHHostKey)
	if err != nil {
		return err
	}
	defer c.Close()
	m.log.Debug("guest agent answered", "vm", vm.Name, "via", "ssh")
	if err := c.SetTime(ctx, time.Now()); err != nil {
		m.log.Warn("set the guest clock", "vm", vm.Name, "err", err)
	}
	m.log.Debug("guest clock set", "vm", vm.Name)
	return nil
}
