package guest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestGenerateHostKey(t *testing.T) {
	priv, pub, err := GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub, "ssh-ed25519 ") || strings.Contains(pub, "\n") {
		t.Fatalf("public key %q", pub)
	}
	if authorizedLine(signer.PublicKey()) != pub {
		t.Fatal("public key does not match the private key")
	}
}

func TestLoadOrCreateSigner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "id_ed25519")
	s1, err := LoadOrCreateSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil || strings.TrimSpace(string(pub)) != authorizedLine(s1.PublicKey()) {
		t.Fatalf("pub file %q: %v", pub, err)
	}
	s2, err := LoadOrCreateSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(s1.PublicKey().Marshal()) != string(s2.PublicKey().Marshal()) {
		t.Fatal("second load made a new key")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Fatalf("key dir holds %v, want the key and its .pub", entries)
	}
	os.WriteFile(path, []byte("not a key"), 0o600)
	if _, err := LoadOrCreateSigner(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("garbled key: %v", err)
	}
}
