// Package vmm defines what banger needs from a virtual machine monitor. Each
// backend (vmm/qemu, vmm/firecracker) runs the VMM detached from the daemon, so
// VMs outlive it, and can re-adopt a running VMM from its run directory. A
// backend declares what it can do (Caps); CheckSpec checks a Spec against
// those capabilities, once, for every backend. The process plumbing the
// backends share (pidfiles, signals, waiting, adoption, process stats) is in
// vmm/vmmproc.
package vmm

import (
	"context"
	"errors"
	"syscall"
)

// ErrNotRunning is returned when the VMM of a VM is not (or no longer) running.
var ErrNotRunning = errors.New("vmm not running")

// Disk is one virtio block device.
type Disk struct {
	Path     string
	Serial   string // bootcfg.Serial*; the guest finds disks by it
	ReadOnly bool
}

// Net attaches the guest's one interface.
type Net struct {
	// Tap is the host tap device (bridge mode). Empty means user-mode networking.
	Tap string
	MAC string
	// SSHHostPort, in user-mode networking, is the loopback port forwarded to the guest's 22.
	SSHHostPort int
	// Isolated, in user-mode networking, keeps the guest from reaching the
	// host and the outside (only SSHHostPort is forwarded in): no NAT.
	Isolated bool
}

// Spec is everything needed to start one VM.
type Spec struct {
	RunDir    string // VM's own folder: pidfile, control socket, logs live here
	Kernel    string
	Initrd    string
	Cmdline   string
	KernelHZ  int // the kernel's CONFIG_HZ, 0 when unknown (see qemu.Command.WithKernelHZ)
	VCPUs     int
	MemoryMiB int
	Disks     []Disk
	Net       *Net
	SerialLog string // file receiving the guest's serial console
}

// Process identifies a running VMM.
type Process struct {
	PID     int
	Backend string // e.g. "qemu-tcg", "qemu-kvm", "firecracker"
}

// Caps is what a backend can run. CheckSpec refuses a Spec beyond them.
type Caps struct {
	// UserNet: the backend runs user-mode networking (a Net without a
	// tap, SSH reached through a forwarded loopback port).
	UserNet bool
	// MaxVCPUs and MaxDisks bound a Spec; 0 means no limit of the backend's own.
	MaxVCPUs int
	MaxDisks int
	// Sockets are the unix sockets the backend makes in the run folder;
	// their paths must fit a socket address.
	Sockets []string
	// Snapshot: the backend can save and restore a running VM.
	Snapshot bool
}

// Backend runs VMs. Implementations must be safe for concurrent use.
type Backend interface {
	// Name is the backend with its accelerator, e.g. "qemu-tcg".
	Name() string
	// Caps says what the backend can run.
	Caps() Caps
	// Start launches the VMM detached (own session, survives the daemon) and
	// returns once it runs the guest; on error nothing is left running.
	Start(ctx context.Context, spec Spec) (Process, error)
	// Adopt checks that the VMM for runDir is alive and really ours (pid and
	// control socket both answer); ErrNotRunning otherwise.
	Adopt(ctx context.Context, runDir string) (Process, error)
	// Signal sends sig to the VMM process of runDir.
	Signal(runDir string, sig syscall.Signal) error
	// Quit stops the VMM at once (no guest shutdown) and waits until it exited.
	Quit(ctx context.Context, runDir string) error
	// Wait blocks until the VMM of runDir has exited or ctx ends.
	Wait(ctx context.Context, runDir string) error
}
