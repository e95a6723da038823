package initsys

import (
	"encoding/json"
	"fmt"
	"net"
	"os"

	"banger/internal/bootcfg"
)

// Paths inside the VM's root, set up by stage 1.
const (
	RunDir     = "/run/banger"
	AgentPath  = "/run/banger/banger-agent" // copy of the agent binary
	ConfigPath = "/run/banger/config.json"  // decoded boot config (0600)
	LowerDir   = "/run/banger/lower"        // the image's ext4, read-only
	OverlayDir = "/run/banger/overlay"      // the overlay disk (upper and work dirs)
)

// ReadConfigDisk decodes and checks the boot config disk at dev.
func ReadConfigDisk(dev string) (*bootcfg.Config, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, fmt.Errorf("open config disk: %w", err)
	}
	defer f.Close()
	cfg, err := bootcfg.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("config disk %s: %w", dev, err)
	}
	if err := CheckConfig(cfg); err != nil {
		return nil, fmt.Errorf("config disk %s: %w", dev, err)
	}
	return cfg, nil
}

// CheckConfig rejects configs the guest cannot apply.
func CheckConfig(c *bootcfg.Config) error {
	if !bootcfg.ValidHostname(c.Hostname) {
		return fmt.Errorf("bad hostname %q", c.Hostname)
	}
	if c.SSHHostKey == "" {
		return fmt.Errorf("no ssh host key")
	}
	switch c.InitMode {
	case "", bootcfg.InitBanger, bootcfg.InitImage:
	default:
		return fmt.Errorf("unknown init mode %q", c.InitMode)
	}
	if err := bootcfg.ValidateSecrets(c.Secrets, c.CACerts); err != nil {
		return err
	}
	if n := c.Network; n != nil {
		if _, err := net.ParseMAC(n.MAC); err != nil {
			return fmt.Errorf("network: bad mac %q", n.MAC)
		}
		if _, _, err := net.ParseCIDR(n.Address); err != nil {
			return fmt.Errorf("network: address %q is not CIDR", n.Address)
		}
		if n.Gateway != "" && net.ParseIP(n.Gateway) == nil {
			return fmt.Errorf("network: bad gateway %q", n.Gateway)
		}
		for _, d := range n.DNS {
			if net.ParseIP(d) == nil {
				return fmt.Errorf("network: bad dns server %q", d)
			}
		}
	}
	return nil
}

// WriteConfigFile saves cfg as JSON (0600) for stage 2.
func WriteConfigFile(path string, cfg *bootcfg.Config) error {
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// ReadConfigFile loads the config written by WriteConfigFile.
func ReadConfigFile(path string) (*bootcfg.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var cfg bootcfg.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := CheckConfig(&cfg); err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return &cfg, nil
}
