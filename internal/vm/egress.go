package vm

import (
	"context"
	"slices"

	"banger/internal/api"
	"banger/internal/egress"
	"banger/internal/model"
)

// egressNetwork is the part of the bridge network that enforces egress
// policies (network.Manager); user-mode networking has none.
type egressNetwork interface {
	SetEgress(ctx context.Context, vmID string, p model.EgressPolicy) error
	EgressDenials(vmID string) []model.EgressDenial
}

// egressNet returns the network's egress side, or nil.
func (m *Manager) egressNet() egressNetwork {
	en, _ := m.net.(egressNetwork)
	return en
}

// checkEgress validates p for this daemon: allow and deny lists need the
// bridge network (user-mode networking has no way to enforce them).
func (m *Manager) checkEgress(p model.EgressPolicy) error {
	if _, err := egress.Compile(p); err != nil {
		return err
	}
	if m.egressNet() == nil && (p.Mode == model.EgressAllow || len(p.Deny) > 0) {
		return api.Errorf(api.ErrUnavailable, "--egress allow and --deny need bridge networking; user-mode networking supports --egress none and open only (%s)", m.netWhy())
	}
	return nil
}

// egressForCreate sets vm's policy from the create params: Egress wins, and
// --nat with a policy other than open is refused.
func (m *Manager) egressForCreate(p api.VMCreateParams, vm *model.VMRecord) error {
	if p.Egress == nil {
		return nil
	}
	if p.NATEnabled && p.Egress.Mode != model.EgressOpen {
		return api.Errorf(api.ErrInvalid, "--nat means --egress open; it cannot go with --egress %s", p.Egress.Mode)
	}
	if err := m.checkEgress(*p.Egress); err != nil {
		return err
	}
	pol := normalEgress(*p.Egress)
	vm.Egress = &pol
	vm.NATEnabled = pol.Mode == model.EgressOpen
	return nil
}

// normalEgress drops empty lists so that stored records stay small.
func normalEgress(p model.EgressPolicy) model.EgressPolicy {
	p.Allow = slices.Clip(p.Allow)
	if len(p.Allow) == 0 {
		p.Allow = nil
	}
	if len(p.Deny) == 0 {
		p.Deny = nil
	}
	return p
}

// applyEgress puts an attached VM's policy in force when it has more to
// say than NAT on or off (the attach did that much).
func (m *Manager) applyEgress(ctx context.Context, vm model.VMRecord) error {
	en := m.egressNet()
	if (vm.Egress == nil && len(vm.Secrets) == 0) || en == nil {
		return nil
	}
	return en.SetEgress(ctx, vm.ID, vm.EffectiveEgress())
}

// setEgress handles the egress part of vm set (Egress, or NAT on a VM that
// has a policy): it changes next and, for a running VM, applies the policy
// at once. It clears p.NATEnabled when it handled it.
func (m *Manager) setEgress(ctx context.Context, p *api.VMSetParams, vm model.VMRecord, next *model.VMRecord) error {
	want := p.Egress
	if want == nil && p.NATEnabled != nil && vm.Egress != nil {
		mode := model.EgressNone
		if *p.NATEnabled {
			mode = model.EgressOpen
		}
		want = &model.EgressPolicy{Mode: mode, Deny: vm.Egress.Deny}
	}
	if want == nil {
		return nil
	}
	if p.NATEnabled != nil && p.Egress != nil && *p.NATEnabled != (p.Egress.Mode == model.EgressOpen) {
		return api.Errorf(api.ErrInvalid, "--nat means --egress open; it cannot go with --egress %s", p.Egress.Mode)
	}
	p.NATEnabled = nil
	if err := m.checkEgress(*want); err != nil {
		return err
	}
	pol := normalEgress(*want)
	next.Egress = &pol
	next.NATEnabled = pol.Mode == model.EgressOpen
	if err := m.checkSecretPolicy(*next); err != nil {
		return err
	}
	if vm.State != model.VMRunning {
		return nil
	}
	if vm.Network != "bridge" || m.egressNet() == nil {
		if next.NATEnabled != vm.NATEnabled {
			return api.Errorf(api.ErrUnavailable, "egress cannot change: vm %q uses user-mode networking (%s)", vm.Name, m.netWhy())
		}
		return nil
	}
	return m.egressNet().SetEgress(ctx, vm.ID, next.EffectiveEgress())
}

// ReapplyEgress puts the policies of running bridge VMs back in force
// after the daemon starts (their taps were reconciled with NAT only, so
// until then a VM under an allowlist reaches nothing beyond the host).
func (m *Manager) ReapplyEgress(ctx context.Context) error {
	if m.egressNet() == nil {
		return nil
	}
	vms, err := m.store.ListVMs(ctx)
	if err != nil {
		return err
	}
	for _, vm := range vms {
		if vm.State == model.VMRunning && vm.Network == "bridge" && vm.Egress != nil {
			if err := m.applyEgress(ctx, vm); err != nil {
				m.log.Warn("egress policy not restored", "vm", vm.Name, "err", err)
			}
		}
	}
	return nil
}

// Egress returns a VM's policy and its recent denials.
func (m *Manager) Egress(ctx context.Context, ref string) (api.VMEgressResult, error) {
	vm, err := m.store.GetVM(ctx, ref)
	if err != nil {
		return api.VMEgressResult{}, err
	}
	res := api.VMEgressResult{Name: vm.Name, Network: vm.Network, Policy: vm.EffectiveEgress(), Denials: []model.EgressDenial{}}
	if en := m.egressNet(); en != nil && vm.State == model.VMRunning {
		if d := en.EgressDenials(vm.ID); d != nil {
			res.Denials = d
		}
	}
	return res, nil
}

// netWhy is the reason the network has no bridge (user-mode networking says
// why), for refusals.
func (m *Manager) netWhy() string {
	if w, ok := m.net.(interface{ Why() string }); ok {
		return w.Why()
	}
	return "no bridge"
}
