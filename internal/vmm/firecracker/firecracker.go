// Package firecracker runs banger VMs with Firecracker on KVM hosts. The
// daemon starts `firecracker --api-sock RUNDIR/fc.sock` in its own session,
// writes its pidfile itself and configures the VM through Firecracker's HTTP
// API on that socket. The VMM outlives the daemon, which finds it again
// through the run directory (pidfile and API socket).
//
// Firecracker differs from QEMU in ways the rest of banger sees: there is no
// user-mode networking (a tap device is required), disks carry no serial (the
// guest learns the disk roles from banger.disks= on the kernel command line)
// and the kernel must be an uncompressed ELF vmlinux.
package firecracker

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
)

// Files Firecracker keeps in a VM's run directory.
const (
	PIDFile   = "vmm.pid"         // written by the backend once firecracker runs
	APISocket = "fc.sock"         // Firecracker's API socket (--api-sock)
	LogFile   = "vmm.log"         // firecracker's stderr
	FCLogFile = "firecracker.log" // Firecracker's own logger (--log-path), warnings and up
)

// Name is the backend name recorded for VMs run by Firecracker.
const Name = "firecracker"

// DefaultBinary is looked up in PATH when Options.Binary is empty.
const DefaultBinary = "firecracker"

// Options configure a Backend. The zero value is usable.
type Options struct {
	// Binary is the firecracker executable, a path or a name looked up in PATH.
	Binary string
	// Logger receives warnings; slog.Default() when nil.
	Logger *slog.Logger
}

// Backend implements vmm.Backend with Firecracker. It holds no mutable state
// and is safe for concurrent use.
type Backend struct {
	binary string
	log    *slog.Logger
}

var _ vmm.Backend = (*Backend)(nil)

// New finds the firecracker binary and checks that /dev/kvm works:
// Firecracker has no software emulation.
func New(opts Options) (*Backend, error) {
	b, err := newBackend(opts)
	if err != nil {
		return nil, err
	}
	if err := vmmproc.CheckKVM(vmmproc.KVMDevice); err != nil {
		return nil, fmt.Errorf("firecracker needs kvm: %w", err)
	}
	return b, nil
}

// newBackend is New without the KVM check.
func newBackend(opts Options) (*Backend, error) {
	bin := opts.Binary
	if bin == "" {
		bin = DefaultBinary
	}
	path, err := vmmproc.FindBinary(bin)
	if err != nil {
		return nil, fmt.Errorf("find firecracker: %w", err)
	}
	b := &Backend{binary: path, log: opts.Logger}
	if b.log == nil {
		b.log = slog.Default()
	}
	return b, nil
}

// Name is "firecracker".
func (b *Backend) Name() string { return Name }

// caps is what Firecracker runs: no user-mode networking, at most 32 vCPUs
// (machine-config's vcpu_count maximum) and maxDisks drives (each gets a
// vdX name).
var caps = vmm.Caps{MaxVCPUs: 32, MaxDisks: maxDisks, Sockets: []string{APISocket}}

// Caps says what Firecracker runs.
func (b *Backend) Caps() vmm.Caps { return caps }

// Binary is the absolute path of the firecracker executable in use.
func (b *Backend) Binary() string { return b.binary }

// argv is the command line that starts firecracker for runDir.
func (b *Backend) argv(runDir string) []string {
	return []string{b.binary,
		"--api-sock", filepath.Join(runDir, APISocket),
		"--log-path", filepath.Join(runDir, FCLogFile),
		"--level", "Warning"}
}
