// Package secrets keeps the values of secrets on the host and puts them
// into a VM's requests without the guest ever holding them: the vault
// (values at rest), a per-VM certificate authority and the substituting
// egress hook. See docs/architecture.md.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// KeySize is the vault key's size: AES-256.
const KeySize = 32

// MaxValueBytes bounds one secret value.
const MaxValueBytes = 64 << 10

// magic starts every value file (format version 1: magic, 12-byte nonce,
// AES-256-GCM ciphertext with the secret id as additional data).
var magic = []byte("BANGERSECRET1\n")

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// Vault keeps secret values encrypted at rest, one file per secret id
// (ID.enc, mode 0600) in a root-only folder (0700). The key is never
// stored next to anything that leaves the host.
type Vault struct {
	dir  string
	aead cipher.AEAD
}

// OpenVault opens the vault in dir (created 0700 when missing) with the
// key in keyFile ("" means dir/key). A missing key file is created once
// (32 random bytes, 0600); an existing one must hold 32 bytes (raw, or 64
// hex digits) and be readable by its owner only.
func OpenVault(dir, keyFile string) (*Vault, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets folder %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets folder %s: %w", dir, err)
	}
	if keyFile == "" {
		keyFile = filepath.Join(dir, "key")
	}
	key, err := loadOrCreateKey(keyFile, dir)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", keyFile, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", keyFile, err)
	}
	return &Vault{dir: dir, aead: aead}, nil
}

func loadOrCreateKey(path, dir string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		// A new key would leave every sealed value unreadable: refuse.
		if sealed, _ := filepath.Glob(filepath.Join(dir, "*.enc")); len(sealed) > 0 {
			return nil, fmt.Errorf("secrets key %s is missing but %s holds %d sealed values: restore the key (or remove the values and their secrets)", path, dir, len(sealed))
		}
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secrets key %s is not a regular file", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("secrets key %s belongs to uid %d, not to the daemon's user (uid %d): chown it", path, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secrets key %s is readable by others (mode %o): chmod 600 it", path, fi.Mode().Perm())
	}
	raw, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", path, err)
	}
	if len(raw) == KeySize {
		return raw, nil
	}
	if k, err := hex.DecodeString(strings.TrimSpace(string(raw))); err == nil && len(k) == KeySize {
		return k, nil
	}
	return nil, fmt.Errorf("secrets key %s must hold %d bytes (raw, or %d hex digits)", path, KeySize, 2*KeySize)
}

func createKey(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create secrets key %s: %w", path, err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create secrets key %s: %w", path, err)
	}
	return key, nil
}

// Dir is the vault's folder.
func (v *Vault) Dir() string { return v.dir }

func (v *Vault) file(id string) (string, error) {
	if !idRE.MatchString(id) {
		return "", fmt.Errorf("secret id %q is not valid", id)
	}
	return filepath.Join(v.dir, id+".enc"), nil
}

// Put stores value as secret id's, replacing any stored one.
func (v *Vault) Put(id string, value []byte) error {
	path, err := v.file(id)
	if err != nil {
		return err
	}
	if len(value) == 0 || len(value) > MaxValueBytes {
		return fmt.Errorf("secret value must be 1 to %d bytes", MaxValueBytes)
	}
	nonce := make([]byte, v.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("store secret %s: %w", id, err)
	}
	out := append(append(append([]byte{}, magic...), nonce...), v.aead.Seal(nil, nonce, value, []byte(id))...)
	f, err := os.CreateTemp(v.dir, ".put-*")
	if err != nil {
		return fmt.Errorf("store secret %s: %w", id, err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("store secret %s: %w", id, err)
	}
	_, err = f.Write(out)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("store secret %s: %w", id, err)
	}
	return nil
}

// Get returns secret id's value. A file changed by anyone, or sealed with
// another key, is an error.
func (v *Vault) Get(id string) ([]byte, error) {
	path, err := v.file(id)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("read secret %s: %w", id, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(len(magic)+v.aead.NonceSize()+MaxValueBytes+v.aead.Overhead()+1)))
	if err != nil {
		return nil, fmt.Errorf("read secret %s: %w", id, err)
	}
	ns := v.aead.NonceSize()
	if len(data) < len(magic)+ns+v.aead.Overhead() || string(data[:len(magic)]) != string(magic) {
		return nil, fmt.Errorf("secret %s: %s is not a banger secret file", id, path)
	}
	data = data[len(magic):]
	value, err := v.aead.Open(nil, data[:ns], data[ns:], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("secret %s: %s failed authentication (changed on disk, or sealed with another key)", id, path)
	}
	return value, nil
}

// Delete removes secret id's value (nothing when it has none).
func (v *Vault) Delete(id string) error {
	path, err := v.file(id)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete secret %s: %w", id, err)
	}
	return nil
}
