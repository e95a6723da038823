package vm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/model"
)

// TestEgressUnderUserModeNetworking: allow and deny lists need the bridge,
// so with user-mode networking they are refused with one clear line and
// nothing is made; none and open are recorded, and --nat is open.
func TestEgressUnderUserModeNetworking(t *testing.T) {
	m, st, _ := newTestManager(t, &fakeBackend{})
	ctx := context.Background()
	for _, p := range []*model.EgressPolicy{
		{Mode: model.EgressAllow, Allow: []string{"github.com"}},
		{Mode: model.EgressOpen, Deny: []string{"10.0.0.0/8"}},
	} {
		_, err := m.Create(ctx, api.VMCreateParams{Name: "eg", ImageName: "img", NoStart: true, Egress: p})
		if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "user-mode networking supports --egress none and open only") {
			t.Errorf("create with %+v: %v", p, err)
		}
		if _, err := st.GetVM(ctx, "eg"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("a refused create left a VM: %v", err)
		}
	}
	if _, err := m.Create(ctx, api.VMCreateParams{Name: "eg", ImageName: "img", NoStart: true, NATEnabled: true,
		Egress: &model.EgressPolicy{Mode: model.EgressNone}}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("--nat with --egress none: %v", err)
	}
	op, err := m.Create(ctx, api.VMCreateParams{Name: "eg", ImageName: "img", NoStart: true,
		Egress: &model.EgressPolicy{Mode: model.EgressOpen}})
	if err != nil {
		t.Fatal(err)
	}
	if op = waitOp(t, m, op.ID); !op.Success {
		t.Fatalf("create: %s", op.Error)
	}
	vm, _ := st.GetVM(ctx, "eg")
	if !vm.NATEnabled || vm.EffectiveEgress().Mode != model.EgressOpen {
		t.Errorf("--egress open recorded as %+v / %+v", vm.NATEnabled, vm.Egress)
	}
	if _, err := m.Set(ctx, api.VMSetParams{IDOrName: "eg", Egress: &model.EgressPolicy{Mode: model.EgressAllow}}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("set --egress allow under user-mode networking: %v", err)
	}
	off := false
	if vm, err = m.Set(ctx, api.VMSetParams{IDOrName: "eg", NATEnabled: &off}); err != nil || vm.NATEnabled || vm.EffectiveEgress().Mode != model.EgressNone {
		t.Errorf("set --nat=false: %+v %v", vm.Egress, err)
	}
}
