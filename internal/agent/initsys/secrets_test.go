package initsys

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/agent/proto"
	"banger/internal/bootcfg"
)

func TestWriteSecrets(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, SecretsDir)
	first := []bootcfg.Secret{
		{Name: "github-token", Env: "GITHUB_TOKEN", Placeholder: "banger-secret-github-token-0123456789abcdef01234567"},
		{Name: "npm", Env: "NPM_TOKEN", Placeholder: "banger-secret-npm-aaaaaaaaaaaaaaaaaaaaaaaa"},
	}
	if err := WriteSecrets(root, first); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("secrets dir: %v %v", fi.Mode(), err)
	}
	for _, s := range first {
		p := filepath.Join(dir, s.Name)
		if got := readString(t, p); got != s.Placeholder {
			t.Errorf("%s holds %q", s.Name, got)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", s.Name, fi.Mode())
		}
	}

	// A clone's new placeholders replace the old ones; unbound secrets go.
	clone := []bootcfg.Secret{{Name: "github-token", Env: "GITHUB_TOKEN", Placeholder: "banger-secret-github-token-fedcba9876543210fedcba98"}}
	if err := WriteSecrets(root, clone); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || readString(t, filepath.Join(dir, "github-token")) != clone[0].Placeholder {
		t.Fatalf("after rewrite: %v", entries)
	}

	// Invalid input changes nothing.
	bad := []bootcfg.Secret{clone[0], {Name: "../escape", Env: "X", Placeholder: "banger-secret-x-aaaaaaaaaaaaaaaaaaaaaaaa"}}
	if err := WriteSecrets(root, bad); err == nil || !strings.Contains(err.Error(), "name must match") {
		t.Fatalf("bad name: %v", err)
	}
	if got := readString(t, filepath.Join(dir, "github-token")); got != clone[0].Placeholder {
		t.Fatalf("refused rewrite changed the file: %q", got)
	}

	// A symlink in place of the directory is refused.
	other := t.TempDir()
	os.MkdirAll(filepath.Join(other, "run/banger"), 0o755)
	os.Symlink(t.TempDir(), filepath.Join(other, SecretsDir))
	if err := WriteSecrets(other, clone); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("linked dir: %v", err)
	}
}

func TestCheckConfigRefusesBadSecrets(t *testing.T) {
	cfg := &bootcfg.Config{Hostname: "vm", SSHHostKey: "k",
		Secrets: []bootcfg.Secret{{Name: "a", Env: "LD_PRELOAD", Placeholder: "banger-secret-a-aaaaaaaaaaaaaaaaaaaaaaaa"}}}
	if err := CheckConfig(cfg); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("CheckConfig: %v", err)
	}
	cfg.Secrets[0].Env = "A"
	cfg.CACerts = []string{"junk"}
	if err := CheckConfig(cfg); err == nil || !strings.Contains(err.Error(), "PEM") {
		t.Fatalf("CheckConfig: %v", err)
	}
	cfg.CACerts = []string{testCA}
	if err := CheckConfig(cfg); err != nil {
		t.Fatal(err)
	}
}

func TestReidentifySecrets(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/ssl/certs/ca-certificates.crt": testSystem})
	log := slog.New(slog.DiscardHandler)
	parent := []bootcfg.Secret{{Name: "tok", Env: "TOK", Placeholder: "banger-secret-tok-aaaaaaaaaaaaaaaaaaaaaaaa"}}
	if err := WriteSecrets(root, parent); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallTrust(root, []string{testCA}); err != nil {
		t.Fatal(err)
	}
	// Nothing sent: nothing changes.
	if err := reidentifySecrets(root, proto.Identity{}, log); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(root, SecretsDir, "tok")); got != parent[0].Placeholder {
		t.Fatalf("placeholder %q", got)
	}
	clone := []bootcfg.Secret{{Name: "tok", Env: "TOK", Placeholder: "banger-secret-tok-bbbbbbbbbbbbbbbbbbbbbbbb"}}
	if err := reidentifySecrets(root, proto.Identity{Secrets: clone, CACerts: []string{testCA2}}, log); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(root, SecretsDir, "tok")); got != clone[0].Placeholder {
		t.Fatalf("placeholder after reidentify %q", got)
	}
	if got := readString(t, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt")); got != testSystem+trustBegin+testCA2+trustEnd {
		t.Fatalf("store after reidentify:\n%s", got)
	}
	if got := readString(t, filepath.Join(root, CACertPath)); got != testCA2 {
		t.Fatalf("ca.crt after reidentify %q", got)
	}
	bad := proto.Identity{Secrets: []bootcfg.Secret{{Name: "tok", Env: "HOME", Placeholder: clone[0].Placeholder}}}
	if err := reidentifySecrets(root, bad, log); err == nil {
		t.Fatal("bad secret accepted")
	}
}

func TestSetSecretsLive(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/ssl/certs/ca-certificates.crt": testSystem})
	log := slog.New(slog.DiscardHandler)
	// A VM that booted without secrets: no CA, no files, no variables.
	first := []bootcfg.Secret{{Name: "tok", Env: "TOK", Placeholder: "banger-secret-tok-aaaaaaaaaaaaaaaaaaaaaaaa"}}
	env, err := setSecrets(root, proto.SecretsUpdate{Secrets: first, CACerts: []string{testCA}}, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(env) != 3 || !strings.HasPrefix(env[0], "SSL_CERT_FILE=") {
		t.Fatalf("trust env %v", env)
	}
	if got := readString(t, filepath.Join(root, SecretsDir, "tok")); got != first[0].Placeholder {
		t.Fatalf("placeholder %q", got)
	}
	if got := readString(t, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt")); got != testSystem+trustBegin+testCA+trustEnd {
		t.Fatalf("store:\n%s", got)
	}
	// A bad set changes nothing.
	bad := proto.SecretsUpdate{Secrets: []bootcfg.Secret{{Name: "other", Env: "PATH", Placeholder: "banger-secret-other-bbbbbbbbbbbbbbbbbbbbbbbb"}}}
	if _, err := setSecrets(root, bad, log); err == nil {
		t.Fatal("bad secret accepted")
	}
	if got := readString(t, filepath.Join(root, SecretsDir, "tok")); got != first[0].Placeholder {
		t.Fatalf("placeholder after a refused set %q", got)
	}
	// An empty set removes the files; the CA stays trusted.
	if _, err := setSecrets(root, proto.SecretsUpdate{}, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, SecretsDir, "tok")); !os.IsNotExist(err) {
		t.Fatalf("secret file left: %v", err)
	}
}
