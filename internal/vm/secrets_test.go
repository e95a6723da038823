package vm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/model"
	"banger/internal/network"
	"banger/internal/paths"
	"banger/internal/secrets"
	"banger/internal/store"
)

// egressNetFake is user-mode networking that claims to enforce egress
// policies (as the bridge does), recording what it is asked to apply.
type egressNetFake struct {
	*network.UserMode
	applied []model.EgressPolicy
}

func (e *egressNetFake) SetEgress(_ context.Context, _ string, p model.EgressPolicy) error {
	e.applied = append(e.applied, p)
	return nil
}
func (e *egressNetFake) EgressDenials(string) []model.EgressDenial { return nil }

const secretValue = "tok-VERY-SECRET-0123456789"

var placeholderRE = regexp.MustCompile(`^banger-secret-gh-token-[0-9a-f]{24}$`)

// newSecretsManager is a test manager whose network enforces egress, with
// the real secrets service (store, vault) and per-VM CAs; alice owns the
// secret gh-token (api.github.com), bob owns "bobs".
func newSecretsManager(t *testing.T) (*Manager, *store.Store, *secrets.Service, context.Context) {
	t.Helper()
	m, st, _ := newTestManager(t, &fakeBackend{})
	m.net = &egressNetFake{UserMode: network.NewUserMode("tests")}
	vault, err := secrets.OpenVault(filepath.Join(t.TempDir(), "secrets"), "")
	if err != nil {
		t.Fatal(err)
	}
	svc := secrets.NewService(st, vault, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.UseSecrets(svc, func(dir, name string) ([]byte, error) {
		ca, err := secrets.LoadOrCreateCA(dir, name)
		if err != nil {
			return nil, err
		}
		return ca.CertPEM(), nil
	})
	alice := authz.WithCaller(context.Background(), authz.Caller{UID: 1001, GID: 1001})
	bob := authz.WithCaller(context.Background(), authz.Caller{UID: 1002, GID: 1002})
	if _, err := svc.Add(alice, api.SecretAddParams{Name: "gh-token", Hosts: []string{"api.github.com"},
		Header: "Authorization: Bearer {}", Value: []byte(secretValue)}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Add(bob, api.SecretAddParams{Name: "bobs", Hosts: []string{"bob.example.com"}, Value: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	return m, st, svc, alice
}

func createOK(t *testing.T, m *Manager, ctx context.Context, p api.VMCreateParams) {
	t.Helper()
	op, err := m.Create(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if op = waitOp(t, m, op.ID); !op.Success {
		t.Fatalf("create: %s", op.Error)
	}
}

// TestCreateWithSecretStoresBindings: --secret NAME binds the caller's
// secret with a fresh placeholder and the default variable; the VM gets
// egress none widened to the bound host on 443, and its record holds no
// value.
func TestCreateWithSecretStoresBindings(t *testing.T) {
	m, st, _, alice := newSecretsManager(t)
	createOK(t, m, alice, api.VMCreateParams{Name: "s1", ImageName: "img", NoStart: true, Secrets: []api.SecretRef{{Name: "gh-token"}}})
	vm, err := st.GetVM(alice, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(vm.Secrets) != 1 {
		t.Fatalf("bindings %+v", vm.Secrets)
	}
	b := vm.Secrets[0]
	if b.Name != "gh-token" || b.Env != "GH_TOKEN" || !placeholderRE.MatchString(b.Placeholder) || b.SecretID == "" {
		t.Errorf("binding %+v", b)
	}
	if vm.Egress == nil || vm.Egress.Mode != model.EgressNone || vm.NATEnabled {
		t.Errorf("egress %+v nat %v", vm.Egress, vm.NATEnabled)
	}
	eff := vm.EffectiveEgress()
	if eff.Mode != model.EgressAllow || !slices.Equal(eff.Allow, []string{"api.github.com:443"}) {
		t.Errorf("effective egress %+v", eff)
	}
	raw, _ := json.Marshal(vm)
	if strings.Contains(string(raw), secretValue) {
		t.Fatal("the VM record holds the value")
	}
	// An allowlist keeps its entries and gains the host; ENV is taken as given.
	createOK(t, m, alice, api.VMCreateParams{Name: "s2", ImageName: "img", NoStart: true,
		Egress:  &model.EgressPolicy{Mode: model.EgressAllow, Allow: []string{"pypi.org"}},
		Secrets: []api.SecretRef{{Name: "gh-token", Env: "GITHUB_TOKEN"}}})
	vm2, _ := st.GetVM(alice, "s2")
	if vm2.Secrets[0].Env != "GITHUB_TOKEN" || vm2.Secrets[0].Placeholder == b.Placeholder {
		t.Errorf("second binding %+v (first %s)", vm2.Secrets[0], b.Placeholder)
	}
	if eff := vm2.EffectiveEgress(); !slices.Equal(eff.Allow, []string{"pypi.org", "api.github.com:443"}) {
		t.Errorf("effective allowlist %v", eff.Allow)
	}
}

// TestCreateWithSecretRefusals: every bad binding is one line, and leaves
// no VM behind.
func TestCreateWithSecretRefusals(t *testing.T) {
	m, st, _, alice := newSecretsManager(t)
	gh := []api.SecretRef{{Name: "gh-token"}}
	cases := []struct {
		name string
		p    api.VMCreateParams
		kind error
		msg  string
	}{
		{"open", api.VMCreateParams{Egress: &model.EgressPolicy{Mode: model.EgressOpen}, Secrets: gh}, api.ErrInvalid, "--secret needs --egress allow or none"},
		{"nat", api.VMCreateParams{NATEnabled: true, Secrets: gh}, api.ErrInvalid, "--secret needs --egress allow or none"},
		{"others", api.VMCreateParams{Secrets: []api.SecretRef{{Name: "bobs"}}}, api.ErrNotFound, `secret "bobs" not found`},
		{"twice", api.VMCreateParams{Secrets: []api.SecretRef{{Name: "gh-token"}, {Name: "gh-token", Env: "X"}}}, api.ErrInvalid, "given twice"},
		{"reserved env", api.VMCreateParams{Secrets: []api.SecretRef{{Name: "gh-token", Env: "PATH"}}}, api.ErrInvalid, "reserved"},
		{"bad env", api.VMCreateParams{Secrets: []api.SecretRef{{Name: "gh-token", Env: "1X"}}}, api.ErrInvalid, "environment variable"},
	}
	for _, tc := range cases {
		tc.p.Name, tc.p.ImageName, tc.p.NoStart = "bad", "img", true
		_, err := m.Create(alice, tc.p)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", tc.name, err)
		}
		if _, err := st.GetVM(alice, "bad"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("%s: a refused create left a VM", tc.name)
		}
	}
	// User-mode networking has no proxy to put values in.
	m.net = network.NewUserMode("no bridge here")
	_, err := m.Create(alice, api.VMCreateParams{Name: "bad", ImageName: "img", NoStart: true, Secrets: gh})
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "needs bridge networking") {
		t.Errorf("user-mode: %v", err)
	}
}

// TestSecretRemoveWhileBoundAndSet: rm is refused naming the VM while it
// is bound; vm set --no-secret unbinds (stopped VM), then rm works; set
// on a suspended VM is refused.
func TestSecretRemoveWhileBoundAndSet(t *testing.T) {
	m, st, svc, alice := newSecretsManager(t)
	createOK(t, m, alice, api.VMCreateParams{Name: "s1", ImageName: "img", NoStart: true, Secrets: []api.SecretRef{{Name: "gh-token"}}})
	err := svc.Remove(alice, "gh-token")
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "bound to vm s1") {
		t.Fatalf("rm while bound: %v", err)
	}
	if _, vms, _ := svc.Show(alice, "gh-token"); !slices.Equal(vms, []string{"s1"}) {
		t.Errorf("show lists %v", vms)
	}
	vm, _ := st.GetVM(alice, "s1")
	vm.State = model.VMSuspended
	st.UpdateVM(alice, vm)
	if _, err := m.Set(alice, api.VMSetParams{IDOrName: "s1", NoSecrets: []string{"gh-token"}}); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "resume it first") {
		t.Fatalf("set on a suspended VM: %v", err)
	}
	vm.State = model.VMStopped
	st.UpdateVM(alice, vm)
	if _, err := m.Set(alice, api.VMSetParams{IDOrName: "s1", Egress: &model.EgressPolicy{Mode: model.EgressOpen}}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("set --egress open with secrets: %v", err)
	}
	// Rebinding with another variable keeps the placeholder.
	got, err := m.Set(alice, api.VMSetParams{IDOrName: "s1", Secrets: []api.SecretRef{{Name: "gh-token", Env: "TOKEN"}}})
	if err != nil || got.Secrets[0].Env != "TOKEN" || got.Secrets[0].Placeholder != vm.Secrets[0].Placeholder {
		t.Fatalf("rebind: %+v %v", got.Secrets, err)
	}
	if _, err := m.Set(alice, api.VMSetParams{IDOrName: "s1", NoSecrets: []string{"nope"}}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("--no-secret of an unbound name: %v", err)
	}
	got, err = m.Set(alice, api.VMSetParams{IDOrName: "s1", NoSecrets: []string{"gh-token"}})
	if err != nil || len(got.Secrets) != 0 {
		t.Fatalf("unbind: %+v %v", got.Secrets, err)
	}
	if err := svc.Remove(alice, "gh-token"); err != nil {
		t.Fatalf("rm once unbound: %v", err)
	}
	// Binding on a stopped VM works again (a new secret, a new placeholder).
	if _, err := svc.Add(alice, api.SecretAddParams{Name: "gh-token", Hosts: []string{"api.github.com"}, Value: []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	got, err = m.Set(alice, api.VMSetParams{IDOrName: "s1", Secrets: []api.SecretRef{{Name: "gh-token"}}})
	if err != nil || len(got.Secrets) != 1 || got.Secrets[0].Placeholder == vm.Secrets[0].Placeholder {
		t.Fatalf("bind on set: %+v %v", got.Secrets, err)
	}
}

// TestCloneGetsNewPlaceholdersAndParentsCA: a clone's record has the
// snapshot's bindings and policy with new placeholders; its folder gets
// the snapshot's CA (the clone's memory trusts it).
func TestCloneGetsNewPlaceholdersAndParentsCA(t *testing.T) {
	m, st, svc, alice := newSecretsManager(t)
	createOK(t, m, alice, api.VMCreateParams{Name: "p", ImageName: "img", NoStart: true, Secrets: []api.SecretRef{{Name: "gh-token"}}})
	parent, _ := st.GetVM(alice, "p")
	if _, err := secrets.LoadOrCreateCA(filepath.Join(parent.Dir, paths.VMCA), parent.Name); err != nil {
		t.Fatal(err)
	}
	sn := model.Snapshot{ID: "sn1", Name: "sn", ImageID: parent.ImageID, Egress: parent.Egress, Secrets: parent.Secrets, Dir: t.TempDir()}
	if err := copyCA(parent.Dir, sn.Dir); err != nil {
		t.Fatal(err)
	}
	img, _ := st.GetImage(alice, parent.ImageID)
	seen := map[string]bool{parent.Secrets[0].Placeholder: true}
	for i := 0; i < 3; i++ {
		c, err := m.cloneRecord(sn, img, "c")
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Secrets) != 1 || c.Secrets[0].Name != "gh-token" || c.Secrets[0].Env != "GH_TOKEN" || !placeholderRE.MatchString(c.Secrets[0].Placeholder) {
			t.Fatalf("clone bindings %+v", c.Secrets)
		}
		if seen[c.Secrets[0].Placeholder] {
			t.Fatalf("placeholder %s reused", c.Secrets[0].Placeholder)
		}
		seen[c.Secrets[0].Placeholder] = true
		if c.Egress == nil || c.EffectiveEgress().Mode != model.EgressAllow {
			t.Fatalf("clone egress %+v", c.Egress)
		}
		if gs := guestSecrets(c.Secrets); gs[0].Placeholder != c.Secrets[0].Placeholder {
			t.Fatalf("reidentify secrets %+v", gs)
		}
	}
	dst := t.TempDir()
	if err := copyCA(sn.Dir, dst); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(parent.Dir, paths.VMCA, secrets.CertFile))
	b, _ := os.ReadFile(filepath.Join(dst, paths.VMCA, secrets.CertFile))
	if len(a) == 0 || string(a) != string(b) {
		t.Fatal("clone's CA differs from its parent's")
	}
	if fi, err := os.Stat(filepath.Join(dst, paths.VMCA, secrets.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("clone's CA key: %v %v", fi, err)
	}
	// A snapshot whose secret has been removed since is not forked.
	m.Set(alice, api.VMSetParams{IDOrName: "p", NoSecrets: []string{"gh-token"}})
	if err := svc.Remove(alice, "gh-token"); err != nil {
		t.Fatal(err)
	}
	if err := m.checkSecretsExist(alice, sn.Secrets); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("fork of a removed secret: %v", err)
	}
	// Nor is a clone recorded whose secret went while the fork ran.
	late, err := m.cloneRecord(sn, img, "late")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.insertClone(alice, late); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("clone of a removed secret recorded: %v", err)
	}
	if _, err := st.GetVM(alice, late.ID); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("clone of a removed secret in the store: %v", err)
	}
}

// TestBootConfigHasPlaceholdersAndCA: the boot config of a VM with
// secrets holds its placeholders and its CA's certificate (made under
// VM_DIR/ca, key 0600), never the value.
func TestBootConfigHasPlaceholdersAndCA(t *testing.T) {
	m, st, _, alice := newSecretsManager(t)
	createOK(t, m, alice, api.VMCreateParams{Name: "s1", ImageName: "img", NoStart: true, Secrets: []api.SecretRef{{Name: "gh-token"}}})
	vm, _ := st.GetVM(alice, "s1")
	img, _ := st.GetImage(alice, vm.ImageID)
	cfg, err := m.bootConfig(&bootRun{vm: &vm, img: img})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Secrets) != 1 || cfg.Secrets[0].Name != "gh-token" || cfg.Secrets[0].Env != "GH_TOKEN" || cfg.Secrets[0].Placeholder != vm.Secrets[0].Placeholder {
		t.Fatalf("config secrets %+v", cfg.Secrets)
	}
	crt, err := os.ReadFile(filepath.Join(vm.Dir, paths.VMCA, secrets.CertFile))
	if err != nil || len(cfg.CACerts) != 1 || cfg.CACerts[0] != string(crt) || !strings.Contains(cfg.CACerts[0], "BEGIN CERTIFICATE") {
		t.Fatalf("config CA %q (file: %v)", cfg.CACerts, err)
	}
	if fi, err := os.Stat(filepath.Join(vm.Dir, paths.VMCA, secrets.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key: %v %v", fi, err)
	}
	raw, _ := json.Marshal(cfg)
	key, _ := os.ReadFile(filepath.Join(vm.Dir, paths.VMCA, secrets.KeyFile))
	keyLine := strings.Split(string(key), "\n")[1] // base64 of the key, as JSON keeps it
	if len(keyLine) < 40 || strings.Contains(string(raw), secretValue) || strings.Contains(string(raw), keyLine) {
		t.Fatal("the boot config holds the value or the CA key")
	}
	// The same CA on the next boot.
	cfg2, _ := m.bootConfig(&bootRun{vm: &vm, img: img})
	if cfg2.CACerts[0] != cfg.CACerts[0] {
		t.Fatal("the CA changed between boots")
	}
	// A VM without secrets gets neither.
	createOK(t, m, alice, api.VMCreateParams{Name: "plain", ImageName: "img", NoStart: true})
	plain, _ := st.GetVM(alice, "plain")
	cfg3, err := m.bootConfig(&bootRun{vm: &plain, img: img})
	if err != nil || cfg3.Secrets != nil || cfg3.CACerts != nil {
		t.Fatalf("plain VM config: %+v %v", cfg3, err)
	}
	if _, err := os.Stat(filepath.Join(plain.Dir, paths.VMCA)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a VM without secrets got a CA")
	}
}
