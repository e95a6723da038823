package initsys

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"banger/internal/agent/proto"
	"banger/internal/bootcfg"
)

// SecretsDir holds one file per secret bound to the VM, named after the
// secret and holding its placeholder (never the value, which stays on the
// host).
const SecretsDir = "/run/banger/secrets"

// installSecrets writes the boot configuration's secret files; a failure
// is logged (sessions still get the placeholders in their environment).
func installSecrets(cfg *bootcfg.Config, log *slog.Logger) {
	if len(cfg.Secrets) == 0 {
		return
	}
	if err := WriteSecrets("/", cfg.Secrets); err != nil {
		log.Error("secrets", "err", err)
		return
	}
	log.Info("secrets installed", "count", len(cfg.Secrets), "dir", SecretsDir)
}

// reidentifySecrets gives a clone (root "/") its own placeholders and CA,
// those the host sent. A CA that cannot be installed is logged, as at boot.
func reidentifySecrets(root string, id proto.Identity, log *slog.Logger) error {
	if err := bootcfg.ValidateSecrets(id.Secrets, id.CACerts); err != nil {
		return err
	}
	if len(id.Secrets) > 0 {
		if err := WriteSecrets(root, id.Secrets); err != nil {
			return err
		}
		log.Info("secrets replaced", "count", len(id.Secrets))
	}
	if len(id.CACerts) > 0 {
		if stores, err := InstallTrust(root, id.CACerts); err != nil {
			log.Error("ca certificates", "err", err)
		} else {
			log.Info("ca certificates replaced", "stores", stores)
		}
	}
	return nil
}

// secretsSetter returns the function that gives a running VM (root "/")
// its new set of secrets (sshd.Config.SetSecrets).
func secretsSetter(log *slog.Logger) func(proto.SecretsUpdate) ([]string, error) {
	return func(u proto.SecretsUpdate) ([]string, error) {
		return setSecrets("/", u, log)
	}
}

// setSecrets replaces the secret files under root with u's (none left
// when u has none) and, when u carries the VM's CA, installs it as at
// boot (a failure is logged, as at boot). It returns the variables that
// point sessions' TLS clients at the CA, once its files are there.
func setSecrets(root string, u proto.SecretsUpdate, log *slog.Logger) ([]string, error) {
	if err := bootcfg.ValidateSecrets(u.Secrets, u.CACerts); err != nil {
		return nil, err
	}
	if err := WriteSecrets(root, u.Secrets); err != nil {
		return nil, err
	}
	log.Info("secrets changed", "count", len(u.Secrets), "dir", SecretsDir)
	if len(u.CACerts) > 0 {
		if stores, err := InstallTrust(root, u.CACerts); err != nil {
			log.Error("ca certificates", "err", err)
		} else {
			log.Info("ca certificates installed", "stores", stores, "bundle", CABundlePath)
		}
	}
	return TrustEnv(root), nil
}

// WriteSecrets makes SecretsDir under root (0700) hold exactly one file
// (0600) per secret, its placeholder without a newline. Files of secrets
// no longer bound are removed. Nothing is written when a secret is invalid.
func WriteSecrets(root string, secrets []bootcfg.Secret) error {
	if err := bootcfg.ValidateSecrets(secrets, nil); err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	dir := filepath.Join(root, SecretsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("write secrets: %s is not a directory", SecretsDir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	keep := map[string]bool{}
	for _, s := range secrets {
		if err := replaceFile(filepath.Join(dir, s.Name), s.Placeholder, 0o600); err != nil {
			return fmt.Errorf("write secret %s: %w", s.Name, err)
		}
		keep[s.Name] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !keep[e.Name()] && !e.IsDir() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write secrets: remove old: %w", err)
	}
	return nil
}
