// Package qemu runs banger VMs with QEMU's microvm machine. QEMU is started
// with -daemonize, so it runs in its own session, is reparented to init and
// outlives the daemon; the daemon finds it again through the run directory
// (pidfile and QMP socket).
package qemu

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
)

// Files QEMU keeps in a VM's run directory.
const (
	PIDFile   = "vmm.pid"  // written by QEMU (-pidfile), removed on clean exit
	QMPSocket = "qmp.sock" // QMP control socket
	LogFile   = "vmm.log"  // QEMU's own stderr until it has daemonized
)

// Backend names.
const (
	NameKVM = "qemu-kvm"
	NameTCG = "qemu-tcg"
)

// DefaultBinary is looked up in PATH when Options.Binary is empty.
const DefaultBinary = "qemu-system-x86_64"

// Options configure a Backend. The zero value is usable.
type Options struct {
	// Binary is the QEMU executable, a path or a name looked up in PATH.
	Binary string
	// DataDir, when set, is passed as -L (firmware and option ROMs), for a
	// QEMU that is not installed in its default prefix.
	DataDir string
	// ForceTCG disables KVM even where /dev/kvm works.
	ForceTCG bool
	// DiskCache is QEMU's -drive cache= mode; "writeback" when empty.
	DiskCache string
	// QuitTimeout bounds how long Quit waits for QEMU to exit after the QMP
	// quit command before it sends SIGKILL; 5 s when zero.
	QuitTimeout time.Duration
	// Logger receives warnings; slog.Default() when nil.
	Logger *slog.Logger
}

// Backend implements vmm.Backend with QEMU. It holds no mutable state and is
// safe for concurrent use.
type Backend struct {
	binary      string
	dataDir     string
	kvm         bool
	tscKHz      int
	diskCache   string
	quitTimeout time.Duration
	log         *slog.Logger
}

var _ vmm.Backend = (*Backend)(nil)

// New finds the QEMU binary and probes the host: KVM when /dev/kvm answers
// (unless opts.ForceTCG), TCG otherwise. Under TCG the host TSC frequency is
// passed to the guest kernel (tsc_early_khz=), without which microvm guests
// often hang calibrating the TSC.
func New(opts Options) (*Backend, error) {
	bin := opts.Binary
	if bin == "" {
		bin = DefaultBinary
	}
	path, err := vmmproc.FindBinary(bin)
	if err != nil {
		return nil, fmt.Errorf("find qemu: %w", err)
	}
	b := &Backend{
		binary:      path,
		dataDir:     opts.DataDir,
		diskCache:   opts.DiskCache,
		quitTimeout: opts.QuitTimeout,
		log:         opts.Logger,
	}
	if b.diskCache == "" {
		b.diskCache = "writeback"
	}
	if b.quitTimeout <= 0 {
		b.quitTimeout = 5 * time.Second
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if !opts.ForceTCG {
		if err := vmmproc.CheckKVM(vmmproc.KVMDevice); err == nil {
			b.kvm = true
		} else {
			b.log.Debug("qemu: kvm not usable, using tcg", "err", err)
		}
	}
	if !b.kvm {
		khz, err := hostTSCKHz(cpuinfoPath, baseFrequencyPath)
		if err != nil {
			b.log.Warn("qemu: host tsc frequency unknown; tcg guests may hang at tsc calibration", "err", err)
		}
		b.tscKHz = khz
	}
	return b, nil
}

// Name is "qemu-kvm" or "qemu-tcg".
func (b *Backend) Name() string {
	if b.kvm {
		return NameKVM
	}
	return NameTCG
}

// Binary is the absolute path of the QEMU executable in use.
func (b *Backend) Binary() string { return b.binary }

// command is the argv for spec, without checking it.
func (b *Backend) command(spec vmm.Spec) Command {
	c := NewCommand(b.binary).
		WithDataDir(b.dataDir).
		WithKVM(b.kvm).
		WithTSCKHz(b.tscKHz).
		WithCPUs(spec.VCPUs).
		WithMemoryMiB(spec.MemoryMiB).
		WithKernel(spec.Kernel).
		WithInitrd(spec.Initrd).
		WithCmdline(spec.Cmdline).
		WithDiskCache(b.diskCache).
		WithSerialLog(spec.SerialLog).
		WithQMPSocket(filepath.Join(spec.RunDir, QMPSocket)).
		WithPIDFile(filepath.Join(spec.RunDir, PIDFile)).
		WithDaemonize(true)
	for _, d := range spec.Disks {
		c = c.WithDisk(d)
	}
	if spec.Net != nil {
		c = c.WithNet(*spec.Net)
	}
	return c
}
