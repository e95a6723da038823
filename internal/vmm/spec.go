package vmm

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"banger/internal/api"
)

const (
	// MaxSerialLen is virtio-blk's limit on a disk serial (VIRTIO_BLK_ID_BYTES).
	MaxSerialLen = 20
	// maxSocketPath is the longest unix socket path the kernel takes.
	maxSocketPath = 107
	// maxTapName is the longest network interface name (IFNAMSIZ - 1).
	maxTapName = 15
)

// CheckSpec rejects a spec a backend with caps cannot run, or would misread
// or fail on obscurely, with one api.ErrInvalid error listing every
// problem. Missing files are left to the VMM, whose message names them.
func CheckSpec(s Spec, caps Caps) error {
	var msgs []string
	bad := func(format string, a ...any) { msgs = append(msgs, fmt.Sprintf(format, a...)) }
	absolute := func(what, path string, required bool) {
		switch {
		case path == "" && required:
			bad("%s path is empty", what)
		case path != "" && !filepath.IsAbs(path):
			bad("%s path %q is not absolute", what, path)
		}
	}
	absolute("run dir", s.RunDir, true)
	for _, sock := range caps.Sockets {
		if s.RunDir != "" && len(filepath.Join(s.RunDir, sock)) > maxSocketPath {
			bad("run dir %q is too long for a unix socket path", s.RunDir)
			break
		}
	}
	absolute("kernel", s.Kernel, true)
	absolute("initrd", s.Initrd, false)
	absolute("serial log", s.SerialLog, false)
	switch {
	case caps.MaxVCPUs > 0 && (s.VCPUs < 1 || s.VCPUs > caps.MaxVCPUs):
		bad("this vmm runs 1 to %d vcpus, got %d", caps.MaxVCPUs, s.VCPUs)
	case s.VCPUs < 1:
		bad("vcpus must be at least 1, got %d", s.VCPUs)
	}
	if s.MemoryMiB < 1 {
		bad("memory must be at least 1 MiB, got %d", s.MemoryMiB)
	}
	if caps.MaxDisks > 0 && len(s.Disks) > caps.MaxDisks {
		bad("this vmm attaches at most %d disks, got %d", caps.MaxDisks, len(s.Disks))
	}
	for i, d := range s.Disks {
		absolute(fmt.Sprintf("disk %d", i), d.Path, true)
		switch {
		case len(d.Serial) > MaxSerialLen:
			bad("disk %d serial %q is longer than %d bytes", i, d.Serial, MaxSerialLen)
		case !validSerial(d.Serial):
			bad("disk %d serial %q must be letters, digits, '-' or '_'", i, d.Serial)
		}
	}
	if n := s.Net; n != nil {
		if n.Tap == "" && !caps.UserNet {
			bad("this vmm has no user-mode networking: the vm needs a tap device (bridge networking)")
		}
		if len(n.Tap) > maxTapName || strings.ContainsAny(n.Tap, "/ ") {
			bad("bad tap device name %q", n.Tap)
		}
		if n.MAC != "" {
			if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 {
				bad("bad mac address %q", n.MAC)
			}
		}
		if n.SSHHostPort < 0 || n.SSHHostPort > 65535 {
			bad("ssh host port %d out of range", n.SSHHostPort)
		}
	}
	if len(msgs) > 0 {
		return api.Errorf(api.ErrInvalid, "%s", strings.Join(msgs, "; "))
	}
	return nil
}

// validSerial reports whether a disk serial is letters, digits, '-' and '_'
// only: what every backend can carry (QEMU's -drive options, Firecracker's
// banger.disks= on the kernel command line).
func validSerial(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
