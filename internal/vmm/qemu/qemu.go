// Package qemu runs banger VMs with QEMU's microvm machine. QEMU runs in its
// own session and outlives the daemon; the daemon finds it again through the
// run directory (pidfile and QMP socket). With Options.RunAs, QEMU drops to
// that unprivileged user, chroots into the run directory and runs under a
// seccomp filter (see docs/security.md). The guest's serial console is a
// socket the daemon drains into a capped, rotated log.
package qemu

import (
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
)

// Files QEMU keeps in a VM's run directory.
const (
	PIDFile      = "vmm.pid"     // written by QEMU (-pidfile); removed by Quit
	QMPSocket    = "qmp.sock"    // QMP control socket
	SerialSocket = "serial.sock" // the guest's serial console (one reader: the daemon)
	SerialTarget = "serial.path" // the serial log's path, for re-adoption
	LogFile      = "vmm.log"     // QEMU's own stderr (capped at vmmLogMax, one old file)
)

// Serial log defaults: each file is capped, one rotated file is kept.
const (
	DefaultSerialLogMax  = 1 << 20
	DefaultSerialLogKeep = 1
	vmmLogMax            = 256 << 10
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
	// RunAs, when set, confines QEMU: -runas this user, -chroot the run
	// directory, -sandbox (when this QEMU has seccomp). It needs root.
	RunAs *vmmproc.SysUser
	// SerialLogMax caps each serial log file (DefaultSerialLogMax when 0);
	// SerialLogKeep rotated files are kept (DefaultSerialLogKeep when 0).
	SerialLogMax  int64
	SerialLogKeep int
	// MemDir is where running VMs' RAM files are made (DefaultMemDir when
	// empty): a tmpfs, see memory.go.
	MemDir string
}

// Backend implements vmm.Backend with QEMU. It is safe for concurrent use.
type Backend struct {
	binary      string
	dataDir     string
	accel       atomic.Pointer[accelMode] // swapped whole by UseKVM
	diskCache   string
	quitTimeout time.Duration
	log         *slog.Logger
	runAs       *vmmproc.SysUser
	sandbox     bool
	serialMax   int64
	serialKeep  int
	memDir      string

	mu       sync.Mutex
	consoles map[string]*console // run dir -> the reader draining its serial socket
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
		runAs:       opts.RunAs,
		serialMax:   opts.SerialLogMax,
		serialKeep:  opts.SerialLogKeep,
		consoles:    map[string]*console{},
		memDir:      opts.MemDir,
	}
	if b.memDir == "" {
		b.memDir = DefaultMemDir
	}
	if b.serialMax <= 0 {
		b.serialMax = DefaultSerialLogMax
	}
	if b.serialKeep <= 0 {
		b.serialKeep = DefaultSerialLogKeep
	}
	if b.runAs != nil {
		if b.runAs.UID == 0 || b.runAs.GID == 0 {
			return nil, fmt.Errorf("qemu: run as %s (uid %d gid %d): must not be root", b.runAs.Name, b.runAs.UID, b.runAs.GID)
		}
		b.sandbox = hasSeccomp(path)
		if !b.sandbox {
			b.log.Warn("qemu: this build has no seccomp (-sandbox); vmms run without a system call filter", "binary", path)
		}
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
	kvm := false
	if !opts.ForceTCG {
		if err := vmmproc.CheckKVM(vmmproc.KVMDevice); err == nil {
			kvm = true
		} else {
			b.log.Debug("qemu: kvm not usable, using tcg", "err", err)
		}
	}
	b.setMode(kvm)
	return b, nil
}

// accelMode is the accelerator VMs started from now on run under; under
// TCG, the host TSC frequency passed to the guest (0 when unknown).
type accelMode struct {
	kvm    bool
	tscKHz int
}

func (b *Backend) setMode(kvm bool) {
	m := &accelMode{kvm: kvm}
	if !kvm {
		khz, err := hostTSCKHz(cpuinfoPath, baseFrequencyPath)
		if err != nil {
			b.log.Warn("qemu: host tsc frequency unknown; tcg guests may hang at tsc calibration", "err", err)
		}
		m.tscKHz = khz
	}
	b.accel.Store(m)
}

// mode is the accelerator now; TCG without a TSC frequency on a Backend not
// made by New.
func (b *Backend) mode() accelMode {
	if m := b.accel.Load(); m != nil {
		return *m
	}
	return accelMode{}
}

// UseKVM switches the accelerator of VMs started or restored from now on
// (KVM, or TCG when on is false); VMs already running keep theirs. KVM is
// refused when /dev/kvm is not usable.
func (b *Backend) UseKVM(on bool) error {
	if on {
		if err := vmmproc.CheckKVM(vmmproc.KVMDevice); err != nil {
			return fmt.Errorf("qemu: use kvm: %w", err)
		}
	}
	b.setMode(on)
	return nil
}

// Name is "qemu-kvm" or "qemu-tcg": the accelerator of VMs started now.
func (b *Backend) Name() string {
	if b.mode().kvm {
		return NameKVM
	}
	return NameTCG
}

// caps is what QEMU's microvm machine runs: user-mode networking; 288
// vCPUs (the machine's cpu-max); 24 virtio-mmio transports, three taken by
// the network device, the balloon and the control port's virtio-serial;
// snapshots, suspend and fork (snapshot.go, suspend.go).
var caps = vmm.Caps{UserNet: true, MaxVCPUs: 288, MaxDisks: 21, Snapshot: true,
	Sockets: []string{QMPSocket, SerialSocket, vmm.ControlSocket}}

// Caps says what QEMU runs.
func (b *Backend) Caps() vmm.Caps { return caps }

// Binary is the absolute path of the QEMU executable in use.
func (b *Backend) Binary() string { return b.binary }

// Confinement says how VMMs run: the user, whether chrooted and whether
// under seccomp; zero values when unconfined.
func (b *Backend) Confinement() (user string, chroot, seccomp bool) {
	if b.runAs == nil {
		return "", false, false
	}
	return b.runAs.Name, true, b.sandbox
}

// ownNetns reports whether spec's QEMU runs in an empty network namespace
// of its own, with its tap handed over as a descriptor: when confined and
// on a tap (user-mode networking needs the host's network).
func (b *Backend) ownNetns(spec vmm.Spec) bool {
	return b.runAs != nil && spec.Net != nil && spec.Net.Tap != ""
}

// hasSeccomp reports whether binary accepts -sandbox (QEMU built with
// seccomp): it parses the option before acting on -version.
func hasSeccomp(binary string) bool {
	return exec.Command(binary, "-sandbox", SandboxArg, "-version").Run() == nil
}

// command is the argv for spec, without checking it.
func (b *Backend) command(spec vmm.Spec) Command {
	mode := b.mode()
	c := NewCommand(b.binary).
		WithDataDir(b.dataDir).
		WithKVM(mode.kvm).
		WithTSCKHz(mode.tscKHz).
		WithKernelHZ(spec.KernelHZ).
		WithCPUs(spec.VCPUs).
		WithMemoryMiB(spec.MemoryMiB).
		WithKernel(spec.Kernel).
		WithInitrd(spec.Initrd).
		WithCmdline(spec.Cmdline).
		WithDiskCache(b.diskCache).
		WithQMPSocket(filepath.Join(spec.RunDir, QMPSocket)).
		WithControlSocket(filepath.Join(spec.RunDir, ControlSocket)).
		WithPIDFile(filepath.Join(spec.RunDir, PIDFile)).
		WithPaused(true).
		WithBalloon(true)
	if spec.SerialLog != "" {
		c = c.WithSerialSocket(filepath.Join(spec.RunDir, SerialSocket))
	}
	if b.runAs != nil {
		c = c.WithRunAs(b.runAs.UID, b.runAs.GID).WithChroot(spec.RunDir).WithSandbox(b.sandbox)
	}
	if b.ownNetns(spec) {
		c = c.WithTapFD(tapFD)
	}
	for _, d := range spec.Disks {
		c = c.WithDisk(d)
	}
	if spec.Net != nil {
		c = c.WithNet(*spec.Net)
	}
	return c
}
