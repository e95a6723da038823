// Package secrets lets a guest use a secret it never sees: the guest holds a
// placeholder, and the egress proxy terminates TLS for the hosts the secret
// is bound to (with a certificate from the VM's own CA, whose key stays on
// the host), puts the real value in the request and takes it out of the
// response.
package secrets

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CA and leaf lifetimes.
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 24 * time.Hour
	leafRenew    = time.Hour // a cached leaf this close to expiry is replaced
	maxLeaves    = 256       // cached leaves per CA (wildcard bindings admit many names)
)

// CA file names inside the CA's directory.
const (
	CertFile = "ca.crt"
	KeyFile  = "ca.key"
)

// CA is one VM's certificate authority; its key never leaves the host.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
	now    func() time.Time
}

// LoadOrCreateCA loads the CA in dir (ca.crt and ca.key), or creates one for
// vmName when there is none: dir is created 0700, the files are 0600, the
// key is ECDSA P-256 and the certificate lasts 10 years.
func LoadOrCreateCA(dir, vmName string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("vm CA: %w", err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("vm CA: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("vm CA: %s is not a directory", dir)
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("vm CA: %w", err)
		}
	}
	certPEM, cerr := readFile(filepath.Join(dir, CertFile))
	keyPEM, kerr := readFile(filepath.Join(dir, KeyFile))
	switch {
	case cerr == nil && kerr == nil:
		ca, err := parseCA(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("vm CA in %s: %w", dir, err)
		}
		return ca, nil
	case cerr != nil && !errors.Is(cerr, fs.ErrNotExist):
		return nil, fmt.Errorf("vm CA: %w", cerr)
	case kerr != nil && !errors.Is(kerr, fs.ErrNotExist):
		return nil, fmt.Errorf("vm CA: %w", kerr)
	}
	// None (or half of one, left by a crash while creating): a new CA.
	certPEM, keyPEM, err = newCA(vmName, time.Now())
	if err != nil {
		return nil, fmt.Errorf("vm CA: %w", err)
	}
	if err := writeFile(dir, KeyFile, keyPEM); err != nil {
		return nil, fmt.Errorf("vm CA: %w", err)
	}
	if err := writeFile(dir, CertFile, certPEM); err != nil {
		return nil, fmt.Errorf("vm CA: %w", err)
	}
	return parseCA(certPEM, keyPEM)
}

// CertPEM is the CA certificate, PEM encoded (what the guest trusts).
func (c *CA) CertPEM() []byte { return append([]byte(nil), c.certPEM...) }

// Leaf is a short-lived server certificate for host signed by the CA (the
// chain holds the leaf and the CA); it is cached per host until near expiry.
func (c *CA) Leaf(host string) (*tls.Certificate, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " /\\\x00") {
		return nil, fmt.Errorf("vm CA: bad host name %q", host)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if l, ok := c.leaves[host]; ok && now.Add(leafRenew).Before(l.Leaf.NotAfter) {
		return l, nil
	}
	l, err := c.newLeaf(host, now)
	if err != nil {
		return nil, fmt.Errorf("vm CA: leaf for %s: %w", host, err)
	}
	if len(c.leaves) >= maxLeaves {
		for h, old := range c.leaves {
			if !now.Add(leafRenew).Before(old.Leaf.NotAfter) {
				delete(c.leaves, h)
			}
		}
		for h := range c.leaves {
			if len(c.leaves) < maxLeaves {
				break
			}
			delete(c.leaves, h)
		}
	}
	c.leaves[host] = l
	return l, nil
}

func (c *CA) newLeaf(host string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(leafLifetime)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if a, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, c.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func newCA(vmName string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randSerial()
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	ski := sha1.Sum(pub)
	name := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, vmName)
	if len(name) > 40 {
		name = name[:40]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: strings.TrimSpace("banger VM CA " + name), Organization: []string{"banger"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski[:],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// parseCA checks that the certificate is a CA, still valid, and that the
// key is its key.
func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New(CertFile + ": no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CertFile, err)
	}
	if !cert.IsCA {
		return nil, errors.New(CertFile + ": not a CA certificate")
	}
	if time.Now().After(cert.NotAfter) {
		return nil, fmt.Errorf("%s: expired on %s", CertFile, cert.NotAfter.Format(time.DateOnly))
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, errors.New(KeyFile + ": no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New(KeyFile + ": not an ECDSA key")
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New(KeyFile + " does not match " + CertFile)
	}
	return &CA{cert: cert, key: key, certPEM: pem.EncodeToMemory(cb),
		leaves: map[string]*tls.Certificate{}, now: time.Now}, nil
}

func randSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// readFile reads a regular file without following a symlink (at most 64 KiB).
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > 64<<10 {
		return nil, fmt.Errorf("%s: not a small regular file", path)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, err
	}
	return b, nil
}

// writeFile writes dir/name (0600) through a temporary file and a rename.
func writeFile(dir, name string, b []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}
