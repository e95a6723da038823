package initsys

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/bootcfg"
)

// HostsFile renders /etc/hosts for hostname.
func HostsFile(hostname string) string {
	short, _, _ := strings.Cut(hostname, ".")
	names := hostname
	if short != hostname {
		names += " " + short
	}
	return "127.0.0.1 localhost\n" +
		"::1 localhost ip6-localhost ip6-loopback\n" +
		"127.0.1.1 " + names + "\n"
}

// ResolvConf renders /etc/resolv.conf; "" when n carries no DNS settings.
func ResolvConf(n *bootcfg.Network) string {
	if n == nil || (len(n.DNS) == 0 && len(n.DNSSearch) == 0) {
		return ""
	}
	var b strings.Builder
	b.WriteString("# written by banger at boot\n")
	if len(n.DNSSearch) > 0 {
		b.WriteString("search " + strings.Join(n.DNSSearch, " ") + "\n")
	}
	for _, d := range n.DNS {
		b.WriteString("nameserver " + d + "\n")
	}
	return b.String()
}

// WriteEtc writes etc/hostname, etc/hosts and (with DNS settings)
// etc/resolv.conf under root. An existing symlink at those paths (dangling
// or not) is replaced by a regular file rather than written through, since
// its target would resolve outside root.
func WriteEtc(root string, c *bootcfg.Config) error {
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return fmt.Errorf("write /etc: %w", err)
	}
	files := map[string]string{
		"hostname": c.Hostname + "\n",
		"hosts":    HostsFile(c.Hostname),
	}
	if rc := ResolvConf(c.Network); rc != "" {
		files["resolv.conf"] = rc
	}
	for name, content := range files {
		if err := replaceFile(filepath.Join(etc, name), content, 0o644); err != nil {
			return fmt.Errorf("write /etc/%s: %w", name, err)
		}
	}
	return nil
}

// replaceFile writes content to a temp file next to path and renames it over
// path, which replaces a symlink instead of following it.
func replaceFile(path, content string, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".banger-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	return nil
}
