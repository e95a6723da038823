package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"banger/internal/api"
	"banger/internal/bootcfg"
	"banger/internal/egress"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/secrets"
)

// Secrets finds the secrets VMs bind (secrets.Service).
type Secrets interface {
	// Resolve finds the secret ref names for the caller of ctx (the
	// server's door has checked they may use it).
	Resolve(ctx context.Context, ref string) (model.Secret, error)
	// Get finds a secret by id.
	Get(ctx context.Context, id string) (model.Secret, error)
	// Hold keeps secrets from being removed while bindings are written.
	Hold() func()
}

// CAFunc returns the PEM certificate of the CA in dir, creating one for
// vmName when there is none (secrets.LoadOrCreateCA).
type CAFunc func(dir, vmName string) ([]byte, error)

// UseSecrets lets VMs bind secrets: s finds them, ca makes each VM's CA.
func (m *Manager) UseSecrets(s Secrets, ca CAFunc) {
	m.secrets, m.caPEM = s, ca
}

// holdSecrets holds secret removals while refs are bound (no-op without).
func (m *Manager) holdSecrets(refs []api.SecretRef) func() {
	if m.secrets == nil || len(refs) == 0 {
		return func() {}
	}
	return m.secrets.Hold()
}

// bindSecrets returns have without the bindings named in drop, plus
// refs bound for the caller of ctx: a secret bound already keeps its
// placeholder (its variable may change); a new one gets a fresh
// placeholder. Every problem is one line.
func (m *Manager) bindSecrets(ctx context.Context, have []model.SecretBinding, refs []api.SecretRef, drop []string) ([]model.SecretBinding, error) {
	if len(refs) > 0 && m.secrets == nil {
		return nil, api.Errorf(api.ErrNotImplemented, "secrets: not available in this daemon")
	}
	out := []model.SecretBinding{}
	for _, name := range drop {
		if !slices.ContainsFunc(have, func(b model.SecretBinding) bool { return b.Name == name }) {
			return nil, api.Errorf(api.ErrInvalid, "--no-secret %s: no secret of that name is bound to the VM", name)
		}
		if slices.ContainsFunc(refs, func(r api.SecretRef) bool { return r.Name == name }) {
			return nil, api.Errorf(api.ErrInvalid, "secret %s is both bound (--secret) and unbound (--no-secret)", name)
		}
	}
	for _, b := range have {
		if !slices.Contains(drop, b.Name) {
			out = append(out, b)
		}
	}
	seen := map[string]bool{}
	for _, r := range refs {
		sec, err := m.secrets.Resolve(ctx, r.Name)
		if err != nil {
			return nil, err
		}
		if seen[sec.ID] {
			return nil, api.Errorf(api.ErrInvalid, "secret %s is given twice", sec.Name)
		}
		seen[sec.ID] = true
		env := r.Env
		if env == "" {
			env = secrets.DefaultEnv(sec.Name)
		}
		if err := secrets.CheckEnv(env); err != nil {
			return nil, api.Errorf(api.ErrInvalid, "--secret %s: %v (give another: --secret %s=VAR)", r.Name, err, sec.Name)
		}
		i := slices.IndexFunc(out, func(b model.SecretBinding) bool { return b.SecretID == sec.ID || b.Name == sec.Name })
		if i >= 0 && out[i].SecretID == sec.ID {
			out[i].Env = env
			continue
		}
		if i >= 0 {
			return nil, api.Errorf(api.ErrInvalid, "a secret named %s is bound already: unbind it first (--no-secret %s)", sec.Name, sec.Name)
		}
		ph, err := secrets.NewPlaceholder(sec.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, model.SecretBinding{Name: sec.Name, Env: env, Placeholder: ph, SecretID: sec.ID,
			Hosts: slices.Clone(sec.Hosts), PlainHTTP: sec.PlainHTTP})
	}
	envs := map[string]string{}
	for _, b := range out {
		if other, ok := envs[b.Env]; ok {
			return nil, api.Errorf(api.ErrInvalid, "secrets %s and %s would both set %s: give one another variable (--secret NAME=VAR)", other, b.Name, b.Env)
		}
		envs[b.Env] = b.Name
	}
	if len(out) > bootcfg.MaxSecrets {
		return nil, api.Errorf(api.ErrInvalid, "at most %d secrets per VM", bootcfg.MaxSecrets)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// checkSecretPolicy refuses a VM with secrets whose networking could not
// keep them: it needs the bridge (banger's egress proxy) and egress none
// or allow (open sends everything past the proxy).
func (m *Manager) checkSecretPolicy(vm model.VMRecord) error {
	if len(vm.Secrets) == 0 {
		return nil
	}
	if m.egressNet() == nil {
		return api.Errorf(api.ErrUnavailable, "--secret needs bridge networking (banger's egress proxy puts the values in); this daemon uses user-mode networking (%s)", m.netWhy())
	}
	if vm.NATEnabled || vm.Egress == nil || vm.Egress.Mode == model.EgressOpen {
		return api.Errorf(api.ErrInvalid, "--secret needs --egress allow or none: with open egress (or --nat) requests would bypass banger's proxy")
	}
	if _, err := egress.Compile(vm.EffectiveEgress()); err != nil {
		return api.Errorf(api.ErrInvalid, "with its secrets' hosts, the VM's egress policy is not valid: %v", err)
	}
	return nil
}

// withSecretEgress gives a VM that has secrets and no policy the policy
// none (the bound hosts are then all it reaches), so that the policy is
// enforced.
func withSecretEgress(vm *model.VMRecord) {
	if len(vm.Secrets) > 0 && vm.Egress == nil && !vm.NATEnabled {
		vm.Egress = &model.EgressPolicy{Mode: model.EgressNone}
	}
}

// checkSecretsExist refuses bindings whose secret has been removed since
// (a snapshot's, forked later).
func (m *Manager) checkSecretsExist(ctx context.Context, bs []model.SecretBinding) error {
	if len(bs) == 0 {
		return nil
	}
	if m.secrets == nil {
		return api.Errorf(api.ErrNotImplemented, "secrets: not available in this daemon")
	}
	for _, b := range bs {
		if _, err := m.secrets.Get(ctx, b.SecretID); err != nil {
			if errors.Is(err, api.ErrNotFound) {
				return api.Errorf(api.ErrConflict, "secret %s bound to the snapshot has been removed", b.Name)
			}
			return err
		}
	}
	return nil
}

// newPlaceholders is bs with a fresh placeholder each (a clone's).
func newPlaceholders(bs []model.SecretBinding) ([]model.SecretBinding, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	out := slices.Clone(bs)
	for i := range out {
		ph, err := secrets.NewPlaceholder(out[i].Name)
		if err != nil {
			return nil, err
		}
		out[i].Placeholder = ph
	}
	return out, nil
}

// guestSecrets is the guest's view of bindings: names, variables and
// placeholders.
func guestSecrets(bs []model.SecretBinding) []bootcfg.Secret {
	if len(bs) == 0 {
		return nil
	}
	out := make([]bootcfg.Secret, len(bs))
	for i, b := range bs {
		out[i] = bootcfg.Secret{Name: b.Name, Env: b.Env, Placeholder: b.Placeholder}
	}
	return out
}

// secretsConfig fills cfg's secrets and, for a VM with any, the VM's CA
// (made under VM_DIR/ca on first use).
func (m *Manager) secretsConfig(vm model.VMRecord, cfg *bootcfg.Config) error {
	if len(vm.Secrets) == 0 {
		return nil
	}
	if m.caPEM == nil {
		return api.Errorf(api.ErrNotImplemented, "secrets: not available in this daemon")
	}
	pem, err := m.caPEM(filepath.Join(vm.Dir, paths.VMCA), vm.Name)
	if err != nil {
		return fmt.Errorf("vm CA: %w", err)
	}
	cfg.Secrets = guestSecrets(vm.Secrets)
	cfg.CACerts = []string{string(pem)}
	return bootcfg.ValidateSecrets(cfg.Secrets, cfg.CACerts)
}

// copyCA copies the CA folder from one folder to another (snapshot,
// clone): a clone's memory already trusts its parent's CA, so it keeps it.
func copyCA(fromDir, toDir string) error {
	src := filepath.Join(fromDir, paths.VMCA)
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	dst := filepath.Join(toDir, paths.VMCA)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("copy vm CA: %w", err)
	}
	for _, name := range []string{secrets.CertFile, secrets.KeyFile} {
		if err := copyPrivate(filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
			return fmt.Errorf("copy vm CA: %w", err)
		}
	}
	return nil
}

func copyPrivate(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
