package secrets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/model"
)

// Store is what the service keeps in the database (store.Store).
type Store interface {
	InsertSecret(ctx context.Context, s model.Secret) error
	GetSecret(ctx context.Context, owner int, name string) (model.Secret, error)
	GetSecretByID(ctx context.Context, id string) (model.Secret, error)
	SecretsNamed(ctx context.Context, name string) ([]model.Secret, error)
	ListSecrets(ctx context.Context) ([]model.Secret, error)
	DeleteSecret(ctx context.Context, id string) error
	ListVMs(ctx context.Context) ([]model.VMRecord, error)
}

// Service adds, lists, shows and removes secrets: descriptions in the
// store, values in the vault. No method returns or logs a value but
// Value, for the egress hook.
type Service struct {
	st    Store
	vault *Vault
	log   *slog.Logger

	// bind orders binds (readers, across a VM record's write) with
	// removals (writer), so a secret is never removed while being bound.
	bind sync.RWMutex

	mu     sync.Mutex
	values map[string][]byte // by secret id; ids are never reused
}

// NewService returns the service.
func NewService(st Store, vault *Vault, log *slog.Logger) *Service {
	return &Service{st: st, vault: vault, log: log, values: map[string][]byte{}}
}

// Add records a secret owned by the caller and stores its value.
func (s *Service) Add(ctx context.Context, p api.SecretAddParams) (model.Secret, error) {
	if err := CheckName(p.Name); err != nil {
		return model.Secret{}, err
	}
	hosts, err := NormalHosts(p.Hosts)
	if err != nil {
		return model.Secret{}, err
	}
	if err := CheckHeader(p.Header); err != nil {
		return model.Secret{}, err
	}
	if err := CheckBasicUser(p.BasicUser); err != nil {
		return model.Secret{}, err
	}
	if p.Header != "" && p.BasicUser != "" {
		return model.Secret{}, api.Errorf(api.ErrInvalid, "--header and --basic cannot go together (Basic auth sets the Authorization header)")
	}
	if err := CheckValue(p.Value); err != nil {
		return model.Secret{}, err
	}
	c := authz.CallerFrom(ctx)
	if _, err := s.st.GetSecret(ctx, c.UID, p.Name); err == nil {
		return model.Secret{}, api.Errorf(api.ErrExists, "secret %q already exists (remove it first to replace it)", p.Name)
	}
	sec := model.Secret{ID: newID(), Name: p.Name, OwnerUID: c.UID, Hosts: hosts, Header: p.Header,
		BasicUser: p.BasicUser, PlainHTTP: p.PlainHTTP, CreatedAt: time.Now().UTC()}
	if err := s.vault.Put(sec.ID, p.Value); err != nil {
		return model.Secret{}, err
	}
	if err := s.st.InsertSecret(ctx, sec); err != nil {
		s.vault.Delete(sec.ID)
		return model.Secret{}, err
	}
	s.log.Info("secret added", "secret", sec.Name, "id", sec.ID, "owner", sec.OwnerUID, "hosts", sec.Hosts)
	return sec, nil
}

// List returns every secret (the server filters by caller).
func (s *Service) List(ctx context.Context) ([]model.Secret, error) {
	return s.st.ListSecrets(ctx)
}

// Show returns a secret and the VMs it is bound to.
func (s *Service) Show(ctx context.Context, ref string) (model.Secret, []string, error) {
	sec, err := s.Resolve(ctx, ref)
	if err != nil {
		return sec, nil, err
	}
	vms, err := s.boundTo(ctx, sec.ID)
	return sec, vms, err
}

// Remove deletes a secret and its value; refused while a VM has it bound.
func (s *Service) Remove(ctx context.Context, ref string) error {
	s.bind.Lock()
	defer s.bind.Unlock()
	sec, err := s.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	vms, err := s.boundTo(ctx, sec.ID)
	if err != nil {
		return err
	}
	if len(vms) > 0 {
		return api.Errorf(api.ErrConflict, "secret %q is bound to vm %s: unbind it first (banger vm set VM --no-secret %s) or delete the VMs", sec.Name, strings.Join(vms, ", "), sec.Name)
	}
	if err := s.st.DeleteSecret(ctx, sec.ID); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.values, sec.ID)
	s.mu.Unlock()
	if err := s.vault.Delete(sec.ID); err != nil {
		return err
	}
	s.log.Info("secret removed", "secret", sec.Name, "id", sec.ID, "owner", sec.OwnerUID)
	return nil
}

// Hold keeps secrets from being removed until the returned func is
// called: a VM's bindings are checked and written under it.
func (s *Service) Hold() func() {
	s.bind.RLock()
	return s.bind.RUnlock
}

// Resolve finds the secret ref names for the caller of ctx: their own of
// that name, else the secret with that id; for root, else the only
// secret of that name. Whether the caller may use it is the door's call
// (authz); a non-root caller never finds another user's secret by name.
func (s *Service) Resolve(ctx context.Context, ref string) (model.Secret, error) {
	if ref == "" {
		return model.Secret{}, api.Errorf(api.ErrInvalid, "a secret name is required")
	}
	c := authz.CallerFrom(ctx)
	sec, err := s.st.GetSecret(ctx, c.UID, ref)
	if !errors.Is(err, api.ErrNotFound) {
		return sec, err
	}
	if sec, err := s.st.GetSecretByID(ctx, ref); !errors.Is(err, api.ErrNotFound) {
		return sec, err
	}
	if c.Root() {
		named, err := s.st.SecretsNamed(ctx, ref)
		if err != nil {
			return model.Secret{}, err
		}
		switch len(named) {
		case 1:
			return named[0], nil
		case 0:
		default:
			return model.Secret{}, api.Errorf(api.ErrInvalid, "%d users have a secret named %q: name it by id (banger secret list --json)", len(named), ref)
		}
	}
	return model.Secret{}, api.Errorf(api.ErrNotFound, "secret %q not found (see 'banger secret list')", ref)
}

// Get finds a secret by id.
func (s *Service) Get(ctx context.Context, id string) (model.Secret, error) {
	return s.st.GetSecretByID(ctx, id)
}

// Value is secret id's value, for the egress hook only (kept in memory
// once read; dropped when the secret is removed).
func (s *Service) Value(id string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.values[id]; ok {
		return v, nil
	}
	v, err := s.vault.Get(id)
	if err != nil {
		return nil, err
	}
	s.values[id] = v
	return v, nil
}

// boundTo names the VMs secret id is bound to.
func (s *Service) boundTo(ctx context.Context, id string) ([]string, error) {
	vms, err := s.st.ListVMs(ctx)
	if err != nil {
		return nil, fmt.Errorf("find the VMs a secret is bound to: %w", err)
	}
	out := []string{}
	for _, v := range vms {
		for _, b := range v.Secrets {
			if b.SecretID == id {
				out = append(out, v.Name)
				break
			}
		}
	}
	return out, nil
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewPlaceholder is a fresh placeholder for secret name:
// banger-secret-NAME- and 24 random hex digits.
func NewPlaceholder(name string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("placeholder: %w", err)
	}
	return "banger-secret-" + name + "-" + hex.EncodeToString(b), nil
}
