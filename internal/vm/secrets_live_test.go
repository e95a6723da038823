package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/secrets"
	"banger/internal/vmm"
)

// TestSetSecretsLive: on a running VM, vm set --secret stores the binding,
// makes the VM's CA, puts the bound host in the egress policy and sends the
// guest its new secrets; when the guest refuses, everything comes back;
// --no-secret sends the empty set and drops the host.
func TestSetSecretsLive(t *testing.T) {
	m, st, _, alice := newSecretsManager(t)
	en := m.net.(*egressNetFake)
	createOK(t, m, alice, api.VMCreateParams{Name: "live", ImageName: "img", NoStart: true,
		Egress: &model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"x.test"}}})
	vm, err := st.GetVM(alice, "live")
	if err != nil {
		t.Fatal(err)
	}
	vm.State, vm.Network = model.VMRunning, "bridge"
	if err := st.UpdateVM(alice, vm); err != nil {
		t.Fatal(err)
	}
	var sent []proto.SecretsUpdate
	var sendErr error
	m.sendSecrets = func(_ context.Context, socket string, u proto.SecretsUpdate) error {
		if want := filepath.Join(vm.Dir, paths.VMRunDir, vmm.ControlSocket); socket != want {
			t.Errorf("socket %s, want %s", socket, want)
		}
		// The proxy must know the new placeholders before the guest uses them.
		stored, _ := st.GetVM(alice, "live")
		if !slices.Equal(guestSecrets(stored.Secrets), u.Secrets) {
			t.Errorf("sent %+v before storing it (stored %+v)", u.Secrets, stored.Secrets)
		}
		sent = append(sent, u)
		return sendErr
	}
	lastAllow := func() []string {
		if len(en.applied) == 0 {
			return nil
		}
		return en.applied[len(en.applied)-1].Allow
	}

	got, err := m.Set(alice, api.VMSetParams{IDOrName: "live", Secrets: []api.SecretRef{{Name: "gh-token"}}})
	if err != nil {
		t.Fatalf("set --secret on a running VM: %v", err)
	}
	if len(got.Secrets) != 1 || !placeholderRE.MatchString(got.Secrets[0].Placeholder) || got.Secrets[0].Env != "GH_TOKEN" {
		t.Fatalf("bindings %+v", got.Secrets)
	}
	if len(sent) != 1 || len(sent[0].Secrets) != 1 || sent[0].Secrets[0].Placeholder != got.Secrets[0].Placeholder || len(sent[0].CACerts) != 1 {
		t.Fatalf("sent %+v", sent)
	}
	caPEM, err := os.ReadFile(filepath.Join(vm.Dir, paths.VMCA, secrets.CertFile))
	if err != nil || string(caPEM) != sent[0].CACerts[0] {
		t.Fatalf("the VM's CA was not made or not sent: %v", err)
	}
	if allow := lastAllow(); !hasHost(allow, "api.github.com") || !slices.Contains(allow, "x.test") {
		t.Fatalf("egress after --secret: %+v", en.applied)
	}
	if stored, _ := st.GetVM(alice, "live"); len(stored.Secrets) != 1 || len(stored.PendingRestart) != 0 {
		t.Fatalf("stored %+v pending %v", stored.Secrets, stored.PendingRestart)
	}

	// The guest does not take the change: the binding and the policy stay.
	sendErr = errors.New("agent: this agent cannot change its secrets")
	_, err = m.Set(alice, api.VMSetParams{IDOrName: "live", NoSecrets: []string{"gh-token"}})
	if err == nil || !strings.Contains(err.Error(), "secrets not changed") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("set with a refusing guest: %v", err)
	}
	if stored, _ := st.GetVM(alice, "live"); len(stored.Secrets) != 1 || stored.Secrets[0].Placeholder != got.Secrets[0].Placeholder {
		t.Fatalf("bindings not rolled back: %+v", stored.Secrets)
	}
	if allow := lastAllow(); !hasHost(allow, "api.github.com") {
		t.Fatalf("egress not rolled back: %+v", en.applied)
	}

	// --no-secret: the guest gets the empty set, the host leaves the policy.
	sendErr = nil
	got, err = m.Set(alice, api.VMSetParams{IDOrName: "live", NoSecrets: []string{"gh-token"}})
	if err != nil || len(got.Secrets) != 0 {
		t.Fatalf("--no-secret on a running VM: %+v %v", got.Secrets, err)
	}
	if last := sent[len(sent)-1]; len(last.Secrets) != 0 || len(last.CACerts) != 0 {
		t.Fatalf("sent after --no-secret: %+v", last)
	}
	if allow := lastAllow(); hasHost(allow, "api.github.com") || !slices.Contains(allow, "x.test") {
		t.Fatalf("egress after --no-secret: %+v", en.applied)
	}
}

// hasHost tells whether allow names host (with or without a port).
func hasHost(allow []string, host string) bool {
	return slices.ContainsFunc(allow, func(a string) bool { return a == host || strings.HasPrefix(a, host+":") })
}
