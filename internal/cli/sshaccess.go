package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/paths"

	"golang.org/x/crypto/ssh"
)

// access is what an SSH client needs to reach one VM as the invoking user.
type access struct {
	api.VMAuthorizeKeyResult
	Alias      string // host key alias and ssh-config Host: NAME.vm
	KeyPath    string
	KnownHosts string
	signer     ssh.Signer
}

// vmAccess makes sure the user's banger key may log in to the VM and that
// the VM's host key is pinned in the user's banger known_hosts. No root-only
// file is read: the daemon authorizes the user's own key in the guest.
func (a *app) vmAccess(ctx context.Context, name string) (*access, error) {
	dir, err := paths.UserConfigDir()
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, "id_ed25519")
	signer, err := guest.LoadOrCreateSigner(keyPath)
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", keyPath, err)
	}
	pubPath := keyPath + ".pub"
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " banger"
	if _, err := os.Stat(pubPath); err != nil {
		os.WriteFile(pubPath, []byte(pub+"\n"), 0o644)
	}
	res, err := a.client().VMAuthorizeKey(ctx, api.VMAuthorizeKeyParams{IDOrName: name, PublicKey: pub})
	if err != nil {
		return nil, err
	}
	acc := &access{VMAuthorizeKeyResult: res, Alias: res.Name + ".vm", KeyPath: keyPath,
		KnownHosts: filepath.Join(dir, "known_hosts"), signer: signer}
	if res.DNSName != "" {
		acc.Alias = res.DNSName
	}
	return acc, pinHostKey(acc.KnownHosts, acc.Alias, res.HostKey)
}

// pinHostKey writes "ALIAS KEY" into known_hosts, replacing an older line
// for the same alias (a re-created VM of the same name has a new key).
func pinHostKey(path, alias, key string) error {
	data, _ := os.ReadFile(path)
	var keep []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] != alias {
			keep = append(keep, l)
		}
	}
	fields := strings.Fields(key)
	if len(fields) < 2 {
		return fmt.Errorf("vm host key missing")
	}
	keep = append(keep, alias+" "+fields[0]+" "+fields[1])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(keep, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// sshArgs are the OpenSSH options that reach the VM with banger's key and
// pinned host key.
func (acc *access) sshArgs() []string {
	return []string{"-i", acc.KeyPath, "-p", fmt.Sprint(acc.Port),
		"-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + acc.KnownHosts,
		"-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=" + acc.Alias,
		"-o", "LogLevel=ERROR", "root@" + acc.Host}
}

// sshConfig renders an OpenSSH config block for the VM.
func (acc *access) sshConfig() string {
	return fmt.Sprintf(`Host %s %s
  HostName %s
  Port %d
  User root
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  StrictHostKeyChecking yes
  HostKeyAlias %s
`, acc.Alias, acc.Name, acc.Host, acc.Port, acc.KeyPath, acc.KnownHosts, acc.Alias)
}

// userPublicKeys reads the invoking user's ~/.ssh/*.pub keys.
func userPublicKeys() ([]string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("find home folder: %w", err)
	}
	files, _ := filepath.Glob(filepath.Join(home, ".ssh", "*.pub"))
	var keys []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--ssh-keys: no public keys in %s", filepath.Join(home, ".ssh", "*.pub"))
	}
	return keys, nil
}
