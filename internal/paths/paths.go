// Package paths names every file and folder banger keeps on disk, in one
// place (see docs/architecture.md for the layout).
package paths

import (
	"os"
	"path/filepath"
)

// Environment variables that override the defaults.
const (
	EnvSocket = "BANGER_SOCKET"
	EnvHome   = "BANGER_HOME"
)

// DefaultSocket is the daemon socket: /run/banger/bangerd.sock as root,
// $XDG_RUNTIME_DIR/banger/bangerd.sock otherwise; BANGER_SOCKET overrides.
func DefaultSocket() string {
	if s := os.Getenv(EnvSocket); s != "" {
		return s
	}
	if os.Geteuid() == 0 {
		return "/run/banger/bangerd.sock"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "banger", "bangerd.sock")
	}
	return filepath.Join(os.TempDir(), "banger-"+itoa(os.Getuid()), "bangerd.sock")
}

// DefaultStateDir is /var/lib/banger as root, ~/.local/share/banger
// otherwise; BANGER_HOME overrides.
func DefaultStateDir() string {
	if s := os.Getenv(EnvHome); s != "" {
		return s
	}
	if os.Geteuid() == 0 {
		return "/var/lib/banger"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "banger")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "banger")
}

// State is the layout of a state directory.
type State struct{ Dir string }

func (s State) path(p ...string) string { return filepath.Join(append([]string{s.Dir}, p...)...) }

// DB is the SQLite database.
func (s State) DB() string { return s.path("banger.db") }

// Lock is the file a running daemon holds an exclusive flock on.
func (s State) Lock() string { return s.path("bangerd.lock") }

// Log is the daemon's log file.
func (s State) Log() string { return s.path("logs", "bangerd.log") }

// Kernels holds one folder per kernel.
func (s State) Kernels() string { return s.path("kernels") }

// Images holds one folder per image (rootfs.ext4).
func (s State) Images() string { return s.path("images") }

// Blobs is the content-addressed OCI blob cache.
func (s State) Blobs() string { return s.path("blobs") }

// VMs holds one folder per VM.
func (s State) VMs() string { return s.path("vms") }

// VM is one VM's folder.
func (s State) VM(id string) string { return s.path("vms", id) }

// SSH holds the daemon's own SSH identity.
func (s State) SSH() string { return s.path("ssh") }

// Secrets holds the secrets vault: its key (unless bangerd --secrets-key
// names another file) and one encrypted file per secret, root only.
func (s State) Secrets() string { return s.path("secrets") }

// Cache holds derived files that can be rebuilt (initrds).
func (s State) Cache() string { return s.path("cache") }

// Network holds networking state (an older daemon's previous ip_forward
// value, taken over by internal/network).
func (s State) Network() string { return s.path("network") }

// Files inside a VM folder.
const (
	VMOverlay   = "overlay.ext4"
	VMWorkDisk  = "work.ext4"
	VMConfig    = "config.img"
	VMSerialLog = "serial.log"
	VMHostKey   = "ssh_host_ed25519_key"
	VMRunDir    = "run" // VMM pidfile, control socket, VMM log
	VMWorkspace = "workspaces"
	// VMCA is the folder of the VM's own certificate authority (VMs with
	// secrets; its key never leaves the host).
	VMCA = "ca"
)

// VMStallLog is the file in a VM folder recording the n-th stalled boot
// attempt of its latest boot (n from 1): the watchdog's reason, the vCPUs'
// state and the console's tail.
func VMStallLog(n int) string { return VMStallPrefix + itoa(n) + ".log" }

// VMStallPrefix starts every VMStallLog name.
const VMStallPrefix = "stall-"

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
