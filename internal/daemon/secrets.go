package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"banger/internal/egress"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/secrets"
)

// secretSource is what the egress hook reads: VM records (bindings) and
// secrets (descriptions and values).
type secretSource interface {
	GetVM(ctx context.Context, ref string) (model.VMRecord, error)
}

// secretHook feeds the secrets substituter: a VM's bindings with their
// values, and its CA. Bindings are read from the VM's record on each
// connection (they change with vm set); a secret's description and value
// never change while it exists, so the service keeps values once read,
// and CAs are kept once loaded.
type secretHook struct {
	vms     secretSource
	secrets *secrets.Service
	log     *slog.Logger

	mu    sync.Mutex
	cas   map[string]*secrets.CA
	descs map[string]model.Secret // by id: a secret does not change while it exists
}

func newSecretHook(vms secretSource, svc *secrets.Service, log *slog.Logger) *secretHook {
	return &secretHook{vms: vms, secrets: svc, log: log, cas: map[string]*secrets.CA{}, descs: map[string]model.Secret{}}
}

// subs is the VM's bindings with their values (none when anything is
// missing: the proxy then splices the connection untouched).
func (h *secretHook) subs(vmID string) []secrets.Sub {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	vm, err := h.vms.GetVM(ctx, vmID)
	if err != nil || len(vm.Secrets) == 0 {
		return nil
	}
	out := make([]secrets.Sub, 0, len(vm.Secrets))
	for _, b := range vm.Secrets {
		sec, err := h.desc(ctx, b.SecretID)
		if err != nil {
			h.log.Warn("secret of a binding", "vm", vm.Name, "secret", b.Name, "err", err)
			continue
		}
		v, err := h.secrets.Value(b.SecretID)
		if err != nil {
			h.log.Warn("secret value", "vm", vm.Name, "secret", b.Name, "err", err)
			continue
		}
		out = append(out, secrets.Sub{Name: b.Name, Placeholder: b.Placeholder, Value: v, Hosts: sec.Hosts,
			Header: sec.Header, BasicUser: sec.BasicUser, PlainHTTP: sec.PlainHTTP})
	}
	return out
}

// desc is secret id's description, kept once read (ids are never reused).
func (h *secretHook) desc(ctx context.Context, id string) (model.Secret, error) {
	h.mu.Lock()
	sec, ok := h.descs[id]
	h.mu.Unlock()
	if ok {
		return sec, nil
	}
	sec, err := h.secrets.Get(ctx, id)
	if err != nil {
		return sec, err
	}
	h.mu.Lock()
	h.descs[id] = sec
	h.mu.Unlock()
	return sec, nil
}

// maxCachedCAs bounds the loaded CAs the hook keeps.
const maxCachedCAs = 256

// ca is the VM's CA, as its boot made it (never a new one: the guest
// would not trust it).
func (h *secretHook) ca(vmID string) (secrets.Minter, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ca, ok := h.cas[vmID]; ok {
		return ca, nil
	}
	vm, err := h.vms.GetVM(context.Background(), vmID)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(vm.Dir, paths.VMCA)
	if _, err := os.Stat(filepath.Join(dir, secrets.CertFile)); err != nil {
		return nil, fmt.Errorf("vm %s has no CA: %w", vm.Name, err)
	}
	ca, err := secrets.LoadOrCreateCA(dir, vm.Name)
	if err != nil {
		return nil, err
	}
	if len(h.cas) >= maxCachedCAs {
		clear(h.cas) // deleted VMs' CAs go too; the rest load again
	}
	h.cas[vmID] = ca
	return ca, nil
}

// denier records a denial among a VM's (by its address).
type denier interface {
	RecordDenial(ip netip.Addr, d egress.Denial) (log bool, dropped int)
}

// deny records d for vm vmID with the bridge network's denials.
func (h *secretHook) deny(n denier) func(vmID string, d model.EgressDenial) {
	return func(vmID string, d model.EgressDenial) {
		vm, err := h.vms.GetVM(context.Background(), vmID)
		if err != nil {
			return
		}
		if ip, err := netip.ParseAddr(vm.GuestIP); err == nil {
			if log, dropped := n.RecordDenial(ip, d); log {
				h.log.Info("egress denied", "vm", vm.Name, "via", d.Via, "name", d.Name, "reason", d.Reason, "unlogged_before", dropped)
			}
		}
	}
}

// substituter is the egress hook that puts secrets into VMs' requests.
func (h *secretHook) substituter(n denier) *secrets.Substituter {
	return &secrets.Substituter{Subs: h.subs, CA: h.ca, Deny: h.deny(n), Log: h.log}
}

// caPEM makes (or loads) the CA in dir and returns its certificate.
func caPEM(dir, vmName string) ([]byte, error) {
	ca, err := secrets.LoadOrCreateCA(dir, vmName)
	if err != nil {
		return nil, err
	}
	return ca.CertPEM(), nil
}

// openSecrets opens the vault (STATE/secrets, key there or --secrets-key).
func (d *Daemon) openSecrets() (*secrets.Service, error) {
	vault, err := secrets.OpenVault(d.state.Secrets(), d.opts.SecretsKey)
	if err != nil {
		return nil, err
	}
	return secrets.NewService(d.store, vault, d.log), nil
}
