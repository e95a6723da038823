// Package vm runs banger's VMs: create (async, in named stages), start,
// stop, kill, set, delete, and the read side (stats, health, ports). It
// composes the store, kernels, images, networking, a VMM backend and the
// guest agent; each is reached through the small interface declared here.
package vm

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/network"
	"banger/internal/paths"
	"banger/internal/vmm"

	"golang.org/x/crypto/ssh"
)

// Store is what the manager keeps in the database.
type Store interface {
	InsertVM(ctx context.Context, vm model.VMRecord) error
	UpdateVM(ctx context.Context, vm model.VMRecord) error
	GetVM(ctx context.Context, ref string) (model.VMRecord, error)
	ListVMs(ctx context.Context) ([]model.VMRecord, error)
	DeleteVM(ctx context.Context, id string) error
	GetImage(ctx context.Context, idOrName string) (model.Image, error)
	ListKernels(ctx context.Context) ([]api.KernelEntry, error)
	PutOperation(ctx context.Context, op api.VMCreateOperation) error
	GetOperation(ctx context.Context, id string) (api.VMCreateOperation, error)
	UnfinishedOperations(ctx context.Context) ([]api.VMCreateOperation, error)
}

// Kernels resolves what a VM boots.
type Kernels interface {
	// BootFiles returns the kernel image and the modules cpio ("" when the
	// kernel needs no modules) of a stored kernel.
	BootFiles(ctx context.Context, name string) (kernelPath, modulesCpio string, err error)
}

// Network attaches VMs to the host: network.Manager (bridge) or
// network.UserMode (the VMM's user-mode networking).
type Network interface {
	Attach(ctx context.Context, vmID string, nat bool) (network.Attachment, error)
	Detach(ctx context.Context, vmID string) error
	SetNAT(ctx context.Context, vmID string, on bool) error
}

// Config holds the manager's fixed inputs.
type Config struct {
	State     paths.State
	AgentPath string
	// ReadyTimeout bounds the wait for the guest agent at boot.
	ReadyTimeout time.Duration
	// StallTimeout is how long a new guest may take to reach banger's init
	// (its first console line) before its VMM is restarted (an early-boot
	// hang), scaled up by the host's load.
	StallTimeout time.Duration
	// StopTimeout bounds a guest power-off before the VMM is killed.
	StopTimeout time.Duration
	// GuestTimeout bounds each guest agent round trip (health, ports,
	// authorize-key, disk usage); guest.DefaultCallTimeout when zero.
	GuestTimeout time.Duration
	// MaxDiskBytes caps one VM disk (work disk, system overlay);
	// DefaultMaxDiskSize when zero. Requests must also fit the free space of
	// the filesystem holding the VM folders.
	MaxDiskBytes int64
	// BootSlots bounds the guests booting at once (VMM start to agent
	// answering); others wait before their VMM starts. The host's CPU
	// count, at least 2, when zero.
	BootSlots int
	// AccelReason says why VMs the backend named backend starts now run
	// under their accelerator; "" when unknown. Nil: never known.
	AccelReason func(backend string) string
}

// Manager owns the VMs.
type Manager struct {
	cfg     Config
	store   Store
	kernels Kernels
	net     Network
	backend vmm.Backend
	signer  ssh.Signer
	log     *slog.Logger
	// base is the daemon's lifetime: background creates run under it.
	base context.Context

	locksMu sync.Mutex
	locks   map[string]*sync.Mutex
	// creating tracks background creates so shutdown can wait for them.
	creating sync.WaitGroup
	// loadPerCPU is the host's load per CPU, scaling the boot stall
	// deadline (tests fake it).
	loadPerCPU func() float64
	// snapMu orders snapshot deletes with forks that map the snapshot.
	snapMu sync.RWMutex
	// freeSpace reports the free bytes of a path's filesystem (tests fake it).
	freeSpace func(path string) (int64, error)
	// steps is the boot (bootSteps; tests make a step fail).
	steps func() []step
	// secrets and caPEM let VMs bind secrets (UseSecrets); nil: refused.
	secrets Secrets
	caPEM   CAFunc
	// sendSecrets gives a running guest its new secrets over its control
	// port (guest.SetSecrets; tests fake it).
	sendSecrets func(ctx context.Context, socket string, u proto.SecretsUpdate) error
	// ops wakes WaitCreateStatus when a create operation changes.
	ops opWatch
	// slots bounds the boots running at once (nil: unbounded).
	slots bootSlots
}

// New returns a manager.
func New(base context.Context, cfg Config, st Store, k Kernels, n Network, b vmm.Backend, signer ssh.Signer, log *slog.Logger) *Manager {
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 180 * time.Second
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = 45 * time.Second
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 20 * time.Second
	}
	m := &Manager{cfg: cfg, store: st, kernels: k, net: n, backend: b, signer: signer, log: log,
		base: base, locks: map[string]*sync.Mutex{}, freeSpace: freeBytes, loadPerCPU: hostLoadPerCPU,
		sendSecrets: guest.SetSecrets, slots: newBootSlots(cfg.BootSlots)}
	m.steps = m.bootSteps
	return m
}

// lock serialises changes to one VM.
func (m *Manager) lock(id string) func() {
	m.locksMu.Lock()
	l, ok := m.locks[id]
	if !ok {
		l = &sync.Mutex{}
		m.locks[id] = l
	}
	m.locksMu.Unlock()
	l.Lock()
	return l.Unlock
}

// lockedVM finds the VM ref names, takes its lock and reads it again under
// the lock (another request may have changed it meanwhile). The caller
// calls unlock when done; on error nothing is held.
func (m *Manager) lockedVM(ctx context.Context, ref string) (vm model.VMRecord, unlock func(), err error) {
	if vm, err = m.store.GetVM(ctx, ref); err != nil {
		return vm, nil, err
	}
	unlock = m.lock(vm.ID)
	if vm, err = m.store.GetVM(ctx, vm.ID); err != nil {
		unlock()
		return vm, nil, err
	}
	return vm, unlock, nil
}

// Wait blocks until background creates have finished (daemon shutdown).
func (m *Manager) Wait() { m.creating.Wait() }

// Lookup resolves NAME (without domain, exact VM name only: no id prefixes)
// to a VM's bridge address, for DNS.
func (m *Manager) Lookup(name string) (netip.Addr, bool) {
	vm, err := m.store.GetVM(context.Background(), name)
	if err != nil || vm.Name != name || vm.GuestIP == "" || vm.DNSName == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(vm.GuestIP)
	return a, err == nil
}
