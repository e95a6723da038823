package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"banger/internal/vmm"
	"banger/internal/vmm/firecracker"
	"banger/internal/vmm/qemu"
	"banger/internal/vmm/vmmproc"
)

// newBackend makes one VMM backend and says which accelerator its VMs run
// under and why. agent is the guest agent binary (for a KVM probe).
type newBackend func(d *Daemon, ctx context.Context, agent string) (vmm.Backend, *accelState, error)

// backends are the VMMs --vmm picks from, by name. A backend is a folder
// under internal/vmm implementing vmm.Backend, and one line here.
var backends = map[string]newBackend{
	"qemu":        (*Daemon).qemuBackend,
	"firecracker": (*Daemon).firecrackerBackend,
}

// defaultBackend is used when --vmm is empty.
const defaultBackend = "qemu"

// backend makes the VMM backend --vmm names.
func (d *Daemon) backend(ctx context.Context, agent string) (vmm.Backend, *accelState, error) {
	name := d.opts.VMM
	if name == "" {
		name = defaultBackend
	}
	mk, ok := backends[name]
	if !ok {
		names := make([]string, 0, len(backends))
		for n := range backends {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, nil, fmt.Errorf("--vmm %q: use %s", d.opts.VMM, strings.Join(names, " or "))
	}
	return mk(d, ctx, agent)
}

// qemuBackend runs QEMU under KVM or TCG, as --accel decides. A choice
// made before any kernel was stored is decided again when one is.
func (d *Daemon) qemuBackend(ctx context.Context, agent string) (vmm.Backend, *accelState, error) {
	bin, err := vmmproc.FindBinary(qemu.DefaultBinary)
	if err != nil {
		return nil, nil, fmt.Errorf("qemu backend: find qemu: %w", err)
	}
	prober := d.hostAccelProber(bin, agent)
	decide := func(ctx context.Context) (accelChoice, error) { return decideAccel(ctx, d.opts.Accel, prober) }
	accel, err := decide(ctx)
	if err != nil {
		return nil, nil, err
	}
	opts, err := d.qemuOptions(!accel.KVM)
	if err != nil {
		return nil, nil, fmt.Errorf("qemu backend: %w", err)
	}
	opts.Binary = bin
	qb, err := qemu.New(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("qemu backend: %w", err)
	}
	if accel.KVM && qb.Name() != qemu.NameKVM {
		accel = accelChoice{Reason: accel.Reason + ", but kvm is not usable: " + errText(vmmproc.CheckKVM(vmmproc.KVMDevice))}
	}
	user, _, seccomp := qb.Confinement()
	d.log.Info("vmm backend", "backend", qb.Name(), "accel", accel.Name(), "why", accel.Reason, "vmm_user", user, "seccomp", seccomp)
	return qb, &accelState{choice: accel, decide: decide, use: qb.UseKVM, name: qb.Name, log: d.log}, nil
}

// firecrackerBackend runs Firecracker, on KVM only.
func (d *Daemon) firecrackerBackend(context.Context, string) (vmm.Backend, *accelState, error) {
	fb, err := firecracker.New(firecracker.Options{Logger: d.log})
	if err != nil {
		return nil, nil, fmt.Errorf("firecracker backend: %w", err)
	}
	d.log.Info("vmm backend", "backend", fb.Name(), "binary", fb.Binary())
	return fb, &accelState{choice: accelChoice{KVM: true, Reason: "firecracker runs on kvm only"}, name: fb.Name, log: d.log}, nil
}

func errText(err error) string {
	if err == nil {
		return "unknown reason"
	}
	return err.Error()
}
