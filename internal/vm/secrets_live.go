package vm

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/bootcfg"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/vmm"
)

// secretsTimeout bounds giving a running guest its new secrets.
const secretsTimeout = 30 * time.Second

// setSecretsLive finishes vm set for a running VM whose secrets change:
// it stores next (the egress proxy reads the bindings from the store),
// puts next's egress policy in force (the bound hosts) and gives the guest
// its new secrets over the control port: new sessions and the files in
// /run/banger/secrets get the new placeholders; processes already running
// keep the environment they started with. The VM's CA is made when it has
// none. When anything fails the old record and policy come back.
func (m *Manager) setSecretsLive(ctx context.Context, vm, next model.VMRecord) error {
	u, err := m.secretsUpdate(vm, next)
	if err != nil {
		m.rollbackSet(ctx, vm, next) // vm set may have changed NAT or egress already
		return err
	}
	if err := m.store.UpdateVM(ctx, next); err != nil {
		m.rollbackSet(ctx, vm, next)
		return err
	}
	err = m.applyLiveEgress(ctx, vm, next)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, secretsTimeout)
		err = m.sendSecrets(pctx, filepath.Join(vm.Dir, paths.VMRunDir, vmm.ControlSocket), u)
		cancel()
		if err != nil {
			err = fmt.Errorf("the guest did not take them: %w", err)
		}
	}
	if err == nil {
		m.log.Info("vm secrets changed", "vm", vm.Name, "secrets", len(next.Secrets))
		return nil
	}
	m.rollbackSet(ctx, vm, next)
	return fmt.Errorf("vm %q: secrets not changed: %w", vm.Name, err)
}

// secretsUpdate is what the guest of a running VM gets for next's
// bindings: placeholders and, with any, the VM's CA (made when missing).
func (m *Manager) secretsUpdate(vm, next model.VMRecord) (proto.SecretsUpdate, error) {
	u := proto.SecretsUpdate{Secrets: guestSecrets(next.Secrets)}
	if len(next.Secrets) > 0 {
		if m.caPEM == nil {
			return u, api.Errorf(api.ErrNotImplemented, "secrets: not available in this daemon")
		}
		pem, err := m.caPEM(filepath.Join(vm.Dir, paths.VMCA), vm.Name)
		if err != nil {
			return u, fmt.Errorf("vm CA: %w", err)
		}
		u.CACerts = []string{string(pem)}
	}
	if err := bootcfg.ValidateSecrets(u.Secrets, u.CACerts); err != nil {
		return u, api.Errorf(api.ErrInvalid, "vm %q: %v", vm.Name, err)
	}
	return u, nil
}

// applyLiveEgress puts next's effective egress policy in force for a
// running bridge VM (its secrets' hosts added or removed).
func (m *Manager) applyLiveEgress(ctx context.Context, vm, next model.VMRecord) error {
	en := m.egressNet()
	if en == nil || vm.Network != "bridge" {
		return nil
	}
	if err := en.SetEgress(ctx, vm.ID, next.EffectiveEgress()); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	return nil
}

// rollbackSet brings back a running VM's record, egress policy and NAT
// as they were before a vm set that failed half way; what cannot be
// brought back is logged.
func (m *Manager) rollbackSet(ctx context.Context, vm, next model.VMRecord) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := m.store.UpdateVM(ctx, vm); err != nil {
		m.log.Error("vm set: old record not restored", "vm", vm.Name, "err", err)
	}
	if next.NATEnabled != vm.NATEnabled {
		if err := m.net.SetNAT(ctx, vm.ID, vm.NATEnabled); err != nil {
			m.log.Error("vm set: old NAT not restored", "vm", vm.Name, "err", err)
		}
	}
	if err := m.applyLiveEgress(ctx, next, vm); err != nil {
		m.log.Error("vm set: old egress policy not restored", "vm", vm.Name, "err", err)
	}
}
