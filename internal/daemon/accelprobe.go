package daemon

import (
	"context"
	"os"
	"path/filepath"

	"banger/internal/vmm/qemu"
	"banger/internal/vmm/vmmproc"
)

// bootIDPath changes at every host boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// hostAccelProber probes with the QEMU binary qemuBin, the newest stored
// kernel and the agent binary.
func (d *Daemon) hostAccelProber(qemuBin, agent string) accelProber {
	return accelProber{
		checkKVM: func() error { return vmmproc.CheckKVM(vmmproc.KVMDevice) },
		kernel:   d.newestKernel,
		nested:   func() bool { return nestedHost("/proc/cpuinfo") },
		probe: func(ctx context.Context, kernel string) error {
			d.log.Info("probing kvm with a test guest", "qemu", qemuBin, "kernel", kernel, "timeout", qemu.DefaultProbeTimeout)
			return qemu.ProbeKVM(ctx, qemu.ProbeSpec{Binary: qemuBin, Kernel: kernel, Agent: agent})
		},
		key:   func(kernel string) string { return probeKey(bootIDPath, qemuBin, kernel, agent) },
		cache: filepath.Join(d.state.Dir, accelCacheFile),
	}
}

// newestKernel is the most recently pulled or imported stored kernel whose
// file exists, "" when there is none.
func (d *Daemon) newestKernel(ctx context.Context) (string, error) {
	ks, err := d.store.ListKernels(ctx)
	if err != nil {
		return "", err
	}
	best, bestAt := "", ""
	for _, k := range ks {
		if k.KernelPath == "" || k.ImportedAt < bestAt {
			continue
		}
		if _, err := os.Stat(k.KernelPath); err != nil {
			continue
		}
		best, bestAt = k.KernelPath, k.ImportedAt
	}
	return best, nil
}
