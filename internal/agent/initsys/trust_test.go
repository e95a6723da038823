package initsys

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	testCA     = "-----BEGIN CERTIFICATE-----\nQkFOR0VSLVZNLUNB\n-----END CERTIFICATE-----\n"
	testCA2    = "-----BEGIN CERTIFICATE-----\nTkVXLUNB\n-----END CERTIFICATE-----\n"
	testSystem = "-----BEGIN CERTIFICATE-----\nU1lTVEVNLVJPT1Q=\n-----END CERTIFICATE-----\n"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInstallTrustDebian(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/ssl/certs/ca-certificates.crt": testSystem})
	os.MkdirAll(filepath.Join(root, "usr/local/share/ca-certificates"), 0o755)

	stores, err := InstallTrust(root, []string{testCA})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stores, []string{"/etc/ssl/certs/ca-certificates.crt"}) {
		t.Fatalf("stores %v", stores)
	}
	bundle := readString(t, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if !strings.HasPrefix(bundle, testSystem) || strings.Count(bundle, testCA) != 1 {
		t.Fatalf("system bundle after install:\n%s", bundle)
	}
	if got := readString(t, filepath.Join(root, debianLocalCA)); got != testCA {
		t.Fatalf("local CA file %q", got)
	}
	if got := readString(t, filepath.Join(root, CACertPath)); got != testCA {
		t.Fatalf("ca.crt %q", got)
	}
	if got := readString(t, filepath.Join(root, CABundlePath)); got != bundle {
		t.Fatalf("ca-bundle.crt %q, want the system bundle with the CA %q", got, bundle)
	}
	fi, _ := os.Stat(filepath.Join(root, CACertPath))
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("ca.crt mode %v", fi.Mode())
	}

	// Idempotent: a second boot changes nothing.
	if _, err := InstallTrust(root, []string{testCA}); err != nil {
		t.Fatal(err)
	}
	if again := readString(t, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt")); again != bundle {
		t.Fatalf("second install changed the bundle:\n%s", again)
	}
	// A new CA replaces the old block instead of adding to it.
	if _, err := InstallTrust(root, []string{testCA2}); err != nil {
		t.Fatal(err)
	}
	bundle = readString(t, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if !strings.HasPrefix(bundle, testSystem) || strings.Contains(bundle, testCA) || strings.Count(bundle, testCA2) != 1 {
		t.Fatalf("bundle after the CA changed:\n%s", bundle)
	}
	// update-ca-certificates regenerated the bundle with banger-vm.crt in it:
	// the CA is not added twice.
	regenerated := testSystem + testCA2
	writeTree(t, root, map[string]string{"etc/ssl/certs/ca-certificates.crt": regenerated})
	if _, err := InstallTrust(root, []string{testCA2}); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt")); got != regenerated {
		t.Fatalf("regenerated bundle changed:\n%s", got)
	}
	env := TrustEnv(root)
	want := []string{"SSL_CERT_FILE=/run/banger/ca-bundle.crt", "REQUESTS_CA_BUNDLE=/run/banger/ca-bundle.crt", "NODE_EXTRA_CA_CERTS=/run/banger/ca.crt"}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("TrustEnv %v", env)
	}
}

func TestInstallTrustLinkedStoresAndMissing(t *testing.T) {
	root := t.TempDir()
	// Fedora: the bundle is an absolute symlink into /etc/pki/ca-trust;
	// Alpine-like: cert.pem is a relative link to the Debian path.
	writeTree(t, root, map[string]string{
		"etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem": testSystem,
		"etc/ssl/certs/ca-certificates.crt":                testSystem,
	})
	os.MkdirAll(filepath.Join(root, "etc/pki/tls/certs"), 0o755)
	if err := os.Symlink("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", filepath.Join(root, "etc/pki/tls/certs/ca-bundle.crt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("certs/ca-certificates.crt", filepath.Join(root, "etc/ssl/cert.pem")); err != nil {
		t.Fatal(err)
	}
	stores, err := InstallTrust(root, []string{testCA})
	if err != nil {
		t.Fatal(err)
	}
	if len(stores) != 3 {
		t.Fatalf("stores %v", stores)
	}
	for _, p := range []string{"etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "etc/ssl/certs/ca-certificates.crt"} {
		if got := readString(t, filepath.Join(root, p)); got != testSystem+trustBegin+testCA+trustEnd {
			t.Errorf("%s:\n%s", p, got)
		}
	}
	if fi, err := os.Lstat(filepath.Join(root, "etc/pki/tls/certs/ca-bundle.crt")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the Fedora link was replaced: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, debianLocalCA)); !os.IsNotExist(err) {
		t.Errorf("local CA written without /usr/local/share/ca-certificates: %v", err)
	}

	// No store at all: only the run files, the bundle being the CA alone.
	empty := t.TempDir()
	stores, err = InstallTrust(empty, []string{testCA})
	if err != nil || len(stores) != 0 {
		t.Fatalf("no stores: %v %v", stores, err)
	}
	if got := readString(t, filepath.Join(empty, CABundlePath)); got != trustBegin+testCA+trustEnd {
		t.Fatalf("bundle without a system store %q", got)
	}
	if env := TrustEnv(t.TempDir()); env != nil {
		t.Fatalf("TrustEnv without the files: %v", env)
	}
}

func TestInstallTrustDoesNotLeaveRoot(t *testing.T) {
	t.Run("openat2", testInstallTrustDoesNotLeaveRoot)
	t.Run("no-openat2", func(t *testing.T) {
		saved := openat2
		defer func() { openat2 = saved }()
		calls := 0
		openat2 = func(int, string, *unix.OpenHow) (int, error) { calls++; return -1, unix.ENOSYS }
		testInstallTrustDoesNotLeaveRoot(t)
		if calls == 0 {
			t.Fatal("fallback not taken")
		}
	})
}

func testInstallTrustDoesNotLeaveRoot(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim.pem")
	writeTree(t, outside, map[string]string{"victim.pem": testSystem})
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/ssl/certs"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc/pki/tls"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/local/share/ca-certificates"), 0o755)
	// Absolute and relative links out of the root, and a linked directory.
	links := map[string]string{
		"etc/ssl/certs/ca-certificates.crt": victim,
		"etc/ssl/cert.pem":                  "../../../../../../../../" + victim,
		"etc/pki/tls/certs":                 outside,
		debianLocalCA:                       victim,
	}
	for rel, target := range links {
		if err := os.Symlink(target, filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
	}
	writeTree(t, outside, map[string]string{"ca-bundle.crt": testSystem})
	_, err := InstallTrust(root, []string{testCA})
	if got := readString(t, victim); got != testSystem {
		t.Fatalf("a file outside the root was changed:\n%s", got)
	}
	if got := readString(t, filepath.Join(outside, "ca-bundle.crt")); got != testSystem {
		t.Fatalf("a file in a linked directory outside the root was changed:\n%s", got)
	}
	if err == nil || !strings.Contains(err.Error(), debianLocalCA) {
		t.Fatalf("linked local CA file: err %v, want it refused", err)
	}
	// The run files are still written; the bundle has only the CA.
	if got := readString(t, filepath.Join(root, CABundlePath)); !bytes.Equal([]byte(got), []byte(trustBegin+testCA+trustEnd)) {
		t.Fatalf("bundle %q", got)
	}
}

func TestOpenNoSymlinks(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"a/b/file": "x"})
	os.Symlink("b", filepath.Join(root, "a/link"))
	os.Symlink("file", filepath.Join(root, "a/b/flink"))
	f, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for rel, ok := range map[string]bool{"a/b/file": true, "/a/b/file": true, "../../a/b/file": true, "a/link/file": false, "a/b/flink": false} {
		fd, err := openNoSymlinks(int(f.Fd()), rel, os.O_RDONLY, 0)
		if (err == nil) != ok {
			t.Errorf("%s: err %v, want ok=%v", rel, err, ok)
		}
		if err == nil {
			os.NewFile(uintptr(fd), rel).Close()
		}
	}
}

func TestRemoveTrust(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/ssl/certs/ca-certificates.crt":                testSystem,
		"etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem": testSystem,
	})
	os.MkdirAll(filepath.Join(root, "etc/pki/tls/certs"), 0o755)
	os.Symlink("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", filepath.Join(root, "etc/pki/tls/certs/ca-bundle.crt"))
	os.MkdirAll(filepath.Join(root, "etc/pki/ca-trust/source/anchors"), 0o755)

	// Nothing installed: nothing looked at.
	if stores, err := RemoveTrust(root); err != nil || stores != nil {
		t.Fatalf("remove before install: %v %v", stores, err)
	}
	if _, err := InstallTrust(root, []string{testCA}); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(root, fedoraLocalCA)); got != testCA {
		t.Fatalf("anchor %q", got)
	}
	stores, err := RemoveTrust(root)
	if err != nil || len(stores) != 2 {
		t.Fatalf("remove: %v %v", stores, err)
	}
	for _, p := range []string{"etc/ssl/certs/ca-certificates.crt", "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"} {
		if got := readString(t, filepath.Join(root, p)); got != testSystem {
			t.Errorf("%s after remove:\n%s", p, got)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, fedoraLocalCA)); !os.IsNotExist(err) {
		t.Errorf("anchor left: %v", err)
	}
	if stores, err := RemoveTrust(root); err != nil || stores != nil {
		t.Fatalf("second remove: %v %v", stores, err)
	}
}
