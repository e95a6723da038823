package guest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// GenerateHostKey makes an ed25519 key pair for a guest: the private key as
// OpenSSH PEM (what sshd.Config.HostKey takes) and the public key as an
// authorized_keys line without comment (what Dial pins).
func GenerateHostKey() (privPEM []byte, pubAuthorized string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, "", fmt.Errorf("generate host key: marshal: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, "", fmt.Errorf("generate host key: public key: %w", err)
	}
	return pem.EncodeToMemory(block), authorizedLine(sshPub), nil
}

// authorizedLine renders key as one authorized_keys line without newline.
func authorizedLine(key ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// LoadOrCreateSigner loads the ed25519 private key at path, or creates it
// (mode 0600, directory 0700) with its public key next to it in path+".pub"
// (mode 0644) when path does not exist.
func LoadOrCreateSigner(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("load ssh key %s: %w", path, err)
		}
		return signer, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load ssh key: %w", err)
	}
	privPEM, pub, err := GenerateHostKey()
	if err != nil {
		return nil, fmt.Errorf("create ssh key %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create ssh key: %w", err)
	}
	if err := writeFileAtomic(path+".pub", []byte(pub+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("create ssh key %s: %w", path, err)
	}
	if err := writeFileAtomic(path, privPEM, 0o600); err != nil {
		os.Remove(path + ".pub")
		return nil, fmt.Errorf("create ssh key %s: %w", path, err)
	}
	signer, err := ssh.ParsePrivateKey(privPEM)
	if err != nil {
		return nil, fmt.Errorf("create ssh key %s: %w", path, err)
	}
	return signer, nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so path is either absent or complete.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	return nil
}
