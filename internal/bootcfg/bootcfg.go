// Package bootcfg is the contract between the host (which writes a VM's boot
// configuration) and banger's init inside the guest (which reads it).
//
// The configuration travels on a small raw virtio-blk disk whose serial is
// SerialConfig: the bytes Magic, then one JSON document, zero-padded to a
// multiple of 4096 bytes. Disks are told apart by their virtio serial
// (/sys/block/vdX/serial); backends that cannot set serials (Firecracker)
// pass the mapping on the kernel command line as banger.disks=ROLE:vdX,...
package bootcfg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Disk serials (roles).
const (
	SerialRootfs  = "banger-rootfs"  // the image's ext4, attached read-only
	SerialOverlay = "banger-overlay" // per-VM ext4 holding the overlayfs upper dir
	SerialWork    = "banger-work"    // per-VM persistent ext4 mounted at /root
	SerialConfig  = "banger-config"  // this package's format
)

// Magic starts every config disk.
const Magic = "BANGERCFG1\n"

// MaxSize bounds a config disk.
const MaxSize = 1 << 20

// Init modes.
const (
	InitBanger = "banger" // banger's init stays PID 1 and runs the agent
	InitImage  = "image"  // hand over to the image's own /sbin/init
)

// Config is everything the guest needs to set itself up.
type Config struct {
	VMID     string `json:"vm_id"`
	Hostname string `json:"hostname"`
	// Network is nil when the guest gets no configured interface.
	Network *Network `json:"network,omitempty"`
	// SSHHostKey is the guest's OpenSSH PEM private host key (ed25519).
	SSHHostKey string `json:"ssh_host_key"`
	// AuthorizedKeys are public keys (authorized_keys lines) allowed to log in as root.
	AuthorizedKeys []string `json:"authorized_keys"`
	InitMode       string   `json:"init_mode,omitempty"`
	StartDocker    bool     `json:"start_docker,omitempty"`
	// HostTimeUnixNano is the host clock when the config was written; the
	// guest uses it as a floor for its clock when it has no RTC.
	HostTimeUnixNano int64 `json:"host_time_unix_nano,omitempty"`
	// Env is added to every session's environment (e.g. PATH from the image).
	Env []string `json:"env,omitempty"`
	// Secrets are placeholders the guest holds for secrets bound to the VM.
	Secrets []Secret `json:"secrets,omitempty"`
	// CACerts are PEM certificates the guest must trust (the VM's own CA).
	CACerts []string `json:"ca_certs,omitempty"`
}

// Network configures the guest's first ethernet interface statically.
type Network struct {
	MAC       string   `json:"mac"`
	Address   string   `json:"address"` // CIDR, e.g. 172.30.0.2/24
	Gateway   string   `json:"gateway,omitempty"`
	DNS       []string `json:"dns,omitempty"`
	DNSSearch []string `json:"dns_search,omitempty"`
}

// Encode renders c as config disk bytes.
func Encode(c *Config) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode boot config: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(Magic)
	b.Write(body)
	b.WriteByte(0)
	if pad := b.Len() % 4096; pad != 0 {
		b.Write(make([]byte, 4096-pad))
	}
	if b.Len() > MaxSize {
		return nil, errors.New("encode boot config: larger than 1 MiB")
	}
	return b.Bytes(), nil
}

// Decode reads a config disk.
func Decode(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize))
	if err != nil {
		return nil, fmt.Errorf("read boot config: %w", err)
	}
	if !bytes.HasPrefix(data, []byte(Magic)) {
		return nil, errors.New("read boot config: bad magic")
	}
	data = data[len(Magic):]
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("read boot config: %w", err)
	}
	return &c, nil
}
