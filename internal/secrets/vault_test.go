package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVaultRoundTripAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	v, err := OpenVault(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Put("abc123", []byte("tok-SECRET-value")); err != nil {
		t.Fatal(err)
	}
	got, err := v.Get("abc123")
	if err != nil || string(got) != "tok-SECRET-value" {
		t.Fatalf("get = %q, %v", got, err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "key"): 0o600, filepath.Join(dir, "abc123.enc"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %o, want %o", path, fi.Mode().Perm(), want)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "abc123.enc"))
	if bytes.Contains(raw, []byte("tok-SECRET-value")) {
		t.Fatal("value stored in clear")
	}
	// The key is made once: a second open reads it and decrypts.
	key1, _ := os.ReadFile(filepath.Join(dir, "key"))
	v2, err := OpenVault(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	key2, _ := os.ReadFile(filepath.Join(dir, "key"))
	if !bytes.Equal(key1, key2) {
		t.Fatal("key file rewritten")
	}
	if got, err := v2.Get("abc123"); err != nil || string(got) != "tok-SECRET-value" {
		t.Fatalf("reopened get = %q, %v", got, err)
	}
	if err := v.Delete("abc123"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get("abc123"); err == nil {
		t.Fatal("get after delete succeeded")
	}
	if err := v.Delete("abc123"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestVaultTamperedFileRefused(t *testing.T) {
	dir := t.TempDir()
	v, err := OpenVault(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Put("s1", []byte("value")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s1.enc")
	raw, _ := os.ReadFile(path)
	raw[len(raw)-1] ^= 1
	os.WriteFile(path, raw, 0o600)
	if _, err := v.Get("s1"); err == nil || !strings.Contains(err.Error(), "failed authentication") {
		t.Fatalf("tampered get: %v", err)
	}
	// A file moved to another id does not open either (the id is sealed in).
	v.Put("s2", []byte("other"))
	os.Rename(filepath.Join(dir, "s2.enc"), filepath.Join(dir, "s3.enc"))
	if _, err := v.Get("s3"); err == nil {
		t.Fatal("swapped file opened")
	}
}

func TestVaultWrongKeyRefused(t *testing.T) {
	dir := t.TempDir()
	v, err := OpenVault(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	v.Put("s1", []byte("value"))
	other := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(other, bytes.Repeat([]byte("k"), KeySize), 0o600)
	w, err := OpenVault(dir, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Get("s1"); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("wrong key get: %v", err)
	}
}

func TestVaultLostKeyNotReplaced(t *testing.T) {
	dir := t.TempDir()
	v, err := OpenVault(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	v.Put("s1", []byte("value"))
	os.Remove(filepath.Join(dir, "key"))
	if _, err := OpenVault(dir, ""); err == nil || !strings.Contains(err.Error(), "restore the key") {
		t.Fatalf("open without the key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "key")); err == nil {
		t.Fatal("a new key was made over sealed values")
	}
}

func TestVaultKeyFileChecks(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.key")
	os.WriteFile(loose, bytes.Repeat([]byte("k"), KeySize), 0o644)
	if _, err := OpenVault(filepath.Join(dir, "v"), loose); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("abc"), 0o600)
	if _, err := OpenVault(filepath.Join(dir, "v"), short); err == nil {
		t.Fatal("short key accepted")
	}
	hexKey := filepath.Join(dir, "hex.key")
	os.WriteFile(hexKey, []byte(strings.Repeat("ab", KeySize)+"\n"), 0o600)
	if _, err := OpenVault(filepath.Join(dir, "v"), hexKey); err != nil {
		t.Fatalf("hex key: %v", err)
	}
	// A named key file that does not exist is created, 0600.
	made := filepath.Join(dir, "new.key")
	if _, err := OpenVault(filepath.Join(dir, "v"), made); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(made); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != KeySize {
		t.Fatalf("created key: %v %v", fi, err)
	}
}

func TestVaultRefusesBadInput(t *testing.T) {
	v, err := OpenVault(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Put("../x", []byte("v")); err == nil {
		t.Fatal("path id accepted")
	}
	if err := v.Put("ok", nil); err == nil {
		t.Fatal("empty value accepted")
	}
	if err := v.Put("ok", make([]byte, MaxValueBytes+1)); err == nil {
		t.Fatal("oversized value accepted")
	}
}

// TestVaultKeyOwnedByAnother: a key file someone else owns (who could read
// or replace it) is refused, whatever its mode.
func TestVaultKeyOwnedByAnother(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file away")
	}
	dir := t.TempDir()
	theirs := filepath.Join(dir, "theirs.key")
	os.WriteFile(theirs, bytes.Repeat([]byte("k"), KeySize), 0o600)
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenVault(filepath.Join(dir, "v"), theirs); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("key owned by uid 65534: %v", err)
	}
}
