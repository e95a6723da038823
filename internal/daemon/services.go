package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"banger/internal/authz"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/kernel"
	"banger/internal/network"
	"banger/internal/server"
	"banger/internal/vm"
	"banger/internal/vmm"
	"banger/internal/vmm/firecracker"
	"banger/internal/vmm/qemu"
	"banger/internal/vmm/vmmproc"
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
	signer, err := guest.LoadOrCreateSigner(filepath.Join(d.state.SSH(), "id_ed25519"))
	if err != nil {
		return server.Services{}, fmt.Errorf("daemon ssh key: %w", err)
	}

	cfg := vm.Config{State: d.state, AgentPath: agent, Domain: network.DefaultDomain, MaxDiskBytes: d.opts.MaxDiskBytes}
	var netw vm.Network
	nm, err := d.network(ctx)
	if err != nil {
		if d.opts.VMM == "firecracker" {
			return server.Services{}, fmt.Errorf("firecracker needs bridge networking: %w", err)
		}
		cfg.NetworkUnavailable = err.Error()
		d.log.Warn("bridge networking unavailable; VMs use QEMU user-mode networking (no NAT switch, no DNS names, no ping)", "reason", err)
	} else {
		netw = nm
	}
	vms := vm.New(ctx, cfg, d.store, kernels, netw, backend, signer, d.log)
	d.closer = append(d.closer, vms.Wait)
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
			if err := nm.ServeEgress(ctx, nil); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Warn("egress proxy stopped", "err", err)
			}
		}()
		go func() {
			if err := nm.ServeDNS(ctx, vms.Lookup); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Warn("dns server stopped", "err", err)
			}
		}()
	}
	return server.Services{
		Kernels:    kernels,
		Images:     imageService{images},
		VMs:        vms,
		Egress:     vms,
		Workspaces: workspaceService{vms: vms, state: d.state, log: d.log},
		Owners:     owners{d.store},
		Accel:      accel.Name(),
		AccelWhy:   accel.Reason,
	}, nil
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

// backend picks the VMM, QEMU (default) or Firecracker, and says which
// accelerator VMs run under and why.
func (d *Daemon) backend(ctx context.Context, agent string) (vmm.Backend, accelChoice, error) {
	switch d.opts.VMM {
	case "", "qemu":
		bin, err := vmmproc.FindBinary(qemu.DefaultBinary)
		if err != nil {
			return nil, accelChoice{}, fmt.Errorf("qemu backend: find qemu: %w", err)
		}
		accel, err := decideAccel(ctx, d.opts.Accel, d.hostAccelProber(bin, agent))
		if err != nil {
			return nil, accelChoice{}, err
		}
		opts, err := d.qemuOptions(!accel.KVM)
		if err != nil {
			return nil, accelChoice{}, fmt.Errorf("qemu backend: %w", err)
		}
		opts.Binary = bin
		qb, err := qemu.New(opts)
		if err != nil {
			return nil, accelChoice{}, fmt.Errorf("qemu backend: %w", err)
		}
		if accel.KVM && qb.Name() != qemu.NameKVM {
			accel = accelChoice{Reason: accel.Reason + ", but kvm is not usable: " + errText(vmmproc.CheckKVM(vmmproc.KVMDevice))}
		}
		user, _, seccomp := qb.Confinement()
		d.log.Info("vmm backend", "backend", qb.Name(), "accel", accel.Name(), "why", accel.Reason, "vmm_user", user, "seccomp", seccomp)
		return qb, accel, nil
	case "firecracker":
		fb, err := firecracker.New(firecracker.Options{Logger: d.log})
		if err != nil {
			return nil, accelChoice{}, fmt.Errorf("firecracker backend: %w", err)
		}
		d.log.Info("vmm backend", "backend", fb.Name(), "binary", fb.Binary())
		return fb, accelChoice{KVM: true, Reason: "firecracker runs on kvm only"}, nil
	}
	return nil, accelChoice{}, fmt.Errorf("--vmm %q: use qemu or firecracker", d.opts.VMM)
}

func errText(err error) string {
	if err == nil {
		return "unknown reason"
	}
	return err.Error()
}
