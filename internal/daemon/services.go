package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"banger/internal/authz"
	"banger/internal/forward"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/kernel"
	"banger/internal/network"
	"banger/internal/server"
	"banger/internal/vm"
	"banger/internal/vmm"
)

// services wires the capabilities this daemon has.
func (d *Daemon) services(ctx context.Context) (server.Services, error) {
	checker := authz.Checker{}
	kernels := kernel.New(d.state.Kernels(), d.store, checker, d.log)
	images := image.New(d.state.Dir, d.store, checker, d.log)
	images.SetMaxImageBytes(d.opts.MaxImageBytes)
	kernels.UseOCI(images.OCI()) // one blob cache for kernel and image pulls

	agent := d.opts.AgentPath
	if agent == "" {
		self, _ := os.Executable()
		agent = filepath.Join(filepath.Dir(self), "banger-agent")
	}
	if _, err := os.Stat(agent); err != nil {
		return server.Services{}, fmt.Errorf("guest agent binary %s: %w (build it with 'make build' or pass --agent)", agent, err)
	}
	backend, accel, err := d.backend(ctx, agent)
	if err != nil {
		return server.Services{}, err
	}
	kernels.OnStored(accel.kernelStored)
	signer, err := guest.LoadOrCreateSigner(filepath.Join(d.state.SSH(), "id_ed25519"))
	if err != nil {
		return server.Services{}, fmt.Errorf("daemon ssh key: %w", err)
	}

	cfg := vm.Config{State: d.state, AgentPath: agent, MaxDiskBytes: d.opts.MaxDiskBytes, AccelReason: accel.ReasonFor}
	netw, nm, err := d.vmNetwork(ctx, backend)
	if err != nil {
		return server.Services{}, err
	}
	vms := vm.New(ctx, cfg, d.store, kernels, netw, backend, signer, d.log)
	d.closer = append(d.closer, vms.Wait)
	secretsSvc, err := d.openSecrets()
	if err != nil {
		return server.Services{}, err
	}
	vms.UseSecrets(secretsSvc, caPEM)
	live, err := vms.Reconcile(ctx)
	if err != nil {
		return server.Services{}, err
	}
	if nm != nil {
		if err := nm.Reconcile(ctx, live); err != nil {
			d.log.Warn("network reconcile", "err", err)
		}
		if err := vms.ReapplyEgress(ctx); err != nil {
			d.log.Warn("egress policies", "err", err)
		}
		go func() {
			hook := newSecretHook(d.store, secretsSvc, d.log).substituter(nm)
			if err := nm.ServeEgress(ctx, hook.Hook); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Warn("egress proxy stopped", "err", err)
			}
		}()
		go func() {
			if err := nm.ServeDNS(ctx, vms.Lookup); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Warn("dns server stopped", "err", err)
			}
		}()
	}
	guests := guest.NewService(vms, signer)
	fw, vmService := d.forwards(ctx, vms, d.store, forward.SSHDialer(signer))
	return server.Services{
		Kernels:    kernels,
		Images:     image.API{Service: images},
		VMs:        vmService,
		Guests:     forwardGuests{GuestService: guests, fw: fw, vms: vms},
		Forwards:   fw,
		Workspaces: workspaceService{guests: guests, log: d.log},
		Egress:     vms,
		Secrets:    secretsSvc,
		Snapshots:  vms,
		Suspends:   vms,
		Owners:     owners{d.store, secretsSvc},
		Accel:      accel.Get,
	}, nil
}

// vmNetwork is the host bridge (also returned as nm, for reconciliation
// and DNS) when it can be set up, else the VMM's user-mode networking when
// the backend has it.
func (d *Daemon) vmNetwork(ctx context.Context, backend vmm.Backend) (netw vm.Network, nm *network.Manager, err error) {
	nm, err = d.network(ctx)
	if err == nil {
		return nm, nm, nil
	}
	if !backend.Caps().UserNet {
		return nil, nil, fmt.Errorf("%s needs bridge networking (it has no user-mode networking): %w", backend.Name(), err)
	}
	d.log.Warn("bridge networking unavailable; VMs use user-mode networking (no NAT switch, no DNS names, no ping)", "reason", err)
	return network.NewUserMode(err.Error()), nil, nil
}

// network sets up the host bridge, or says why it cannot.
func (d *Daemon) network(ctx context.Context) (*network.Manager, error) {
	if os.Getenv("BANGER_NETWORK") == "user" {
		return nil, errors.New("user-mode networking requested (BANGER_NETWORK=user)")
	}
	subnet, auto, err := network.ParseSubnet(os.Getenv("BANGER_SUBNET"))
	if err != nil {
		return nil, err
	}
	cfg := network.Config{StateDir: d.state.Dir, Subnet: subnet, AutoSubnet: auto,
		Bridge: os.Getenv("BANGER_BRIDGE"), AllowVMToVM: os.Getenv("BANGER_ALLOW_VM_TO_VM") == "1",
		ResolvConf: os.Getenv("BANGER_RESOLV_CONF")}
	nm, err := network.New(cfg, d.store, d.log)
	if err != nil {
		return nil, err
	}
	if err := nm.Available(); err != nil {
		return nil, err
	}
	if err := nm.Setup(ctx); err != nil {
		return nil, err
	}
	return nm, nil
}
