package secrets

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCACreateLoad creates a CA (dir 0700, files 0600), loads it again
// (same certificate), and checks that a leaf verifies against it for its
// host only, is cached, and is renewed near expiry.
func TestCACreateLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vm", "ca")
	ca, err := LoadOrCreateCA(dir, "devbox")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir,
		filepath.Join(dir, CertFile): 0o600, filepath.Join(dir, KeyFile): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, st.Mode(), want)
		}
	}
	again, err := LoadOrCreateCA(dir, "devbox")
	if err != nil {
		t.Fatal(err)
	}
	if string(again.CertPEM()) != string(ca.CertPEM()) {
		t.Fatal("loading gave another CA")
	}
	b, _ := pem.Decode(ca.CertPEM())
	caCert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !caCert.IsCA || caCert.MaxPathLen != 0 || !caCert.MaxPathLenZero || !strings.Contains(caCert.Subject.CommonName, "devbox") {
		t.Errorf("CA certificate: IsCA %v MaxPathLen %d CN %q", caCert.IsCA, caCert.MaxPathLen, caCert.Subject.CommonName)
	}
	if d := time.Until(caCert.NotAfter); d < 9*365*24*time.Hour {
		t.Errorf("CA lasts %v", d)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)

	leaf, err := again.Leaf("API.Example.com.")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "api.example.com"}); err != nil {
		t.Errorf("leaf does not verify: %v", err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other.example.com"}); err == nil {
		t.Error("leaf verifies for another host")
	}
	if d := time.Until(leaf.Leaf.NotAfter); d > 25*time.Hour {
		t.Errorf("leaf lasts %v", d)
	}
	if len(leaf.Certificate) != 2 {
		t.Errorf("chain has %d certificates, want leaf and CA", len(leaf.Certificate))
	}
	l2, _ := again.Leaf("api.example.com")
	if l2 != leaf {
		t.Error("leaf not cached")
	}
	again.now = func() time.Time { return time.Now().Add(23*time.Hour + 30*time.Minute) }
	l3, err := again.Leaf("api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if l3 == leaf {
		t.Error("leaf near expiry not renewed")
	}
	if _, err := again.Leaf(""); err == nil {
		t.Error("empty host accepted")
	}
	ip, err := again.Leaf("192.0.2.7")
	if err != nil || len(ip.Leaf.IPAddresses) != 1 {
		t.Errorf("IP leaf: %v %v", err, ip)
	}
}

// TestCAMismatch refuses a key that is not the certificate's, and a
// directory that is a file; half a CA (key only) is replaced by a new one.
func TestCAMismatch(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if _, err := LoadOrCreateCA(a, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(b, "b"); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(b, KeyFile))
	os.WriteFile(filepath.Join(a, KeyFile), key, 0o600)
	if _, err := LoadOrCreateCA(a, "a"); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	os.WriteFile(filepath.Join(a, CertFile), []byte("junk"), 0o600)
	if _, err := LoadOrCreateCA(a, "a"); err == nil {
		t.Error("junk certificate accepted")
	}
	os.Remove(filepath.Join(b, CertFile))
	if _, err := LoadOrCreateCA(b, "b"); err != nil {
		t.Errorf("half a CA: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := LoadOrCreateCA(f, "x"); err == nil {
		t.Error("a file as the CA dir accepted")
	}
	// A symlinked key is not followed.
	c := t.TempDir()
	if _, err := LoadOrCreateCA(c, "c"); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(c, KeyFile))
	os.Symlink(filepath.Join(b, KeyFile), filepath.Join(c, KeyFile))
	if _, err := LoadOrCreateCA(c, "c"); err == nil {
		t.Error("symlinked key followed")
	}
}
