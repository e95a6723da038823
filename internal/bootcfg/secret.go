package bootcfg

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Secret is one secret bound to a VM as the guest sees it: never the value,
// only a placeholder the host's egress proxy swaps for the value.
type Secret struct {
	Name        string `json:"name"`        // the secret's name; file /run/banger/secrets/NAME
	Env         string `json:"env"`         // environment variable the placeholder is set in
	Placeholder string `json:"placeholder"` // banger-secret-NAME-<24 hex>
}

// Bounds of the secrets and CA certificates in a Config.
const (
	MaxSecrets      = 64
	MaxSecretName   = 64
	MaxEnvName      = 128
	MaxPlaceholder  = 128
	MaxCACerts      = 4
	MaxCACertLength = 16 << 10
)

// reservedEnv are variables a secret may not take over: the session's own
// basics, and those pointing TLS clients at the VM's CA bundle.
var reservedEnv = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
	"TERM": true, "PWD": true, "IFS": true, "ENV": true, "BASH_ENV": true,
	"HOSTNAME": true, "LANG": true, "TZ": true, "MAIL": true, "TMPDIR": true,
	"SSH_AUTH_SOCK": true, "SSH_CONNECTION": true, "SSH_CLIENT": true,
	"SSH_TTY": true, "SSH_ORIGINAL_COMMAND": true,
	"SSL_CERT_FILE": true, "SSL_CERT_DIR": true, "REQUESTS_CA_BUNDLE": true,
	"NODE_EXTRA_CA_CERTS": true, "CURL_CA_BUNDLE": true, "GIT_SSL_CAINFO": true,
	"http_proxy": true, "https_proxy": true, "no_proxy": true,
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true, "ALL_PROXY": true,
}

// ValidEnvName reports why name cannot be a secret's environment variable,
// or nil.
func ValidEnvName(name string) error {
	switch {
	case name == "":
		return errors.New("empty environment variable name")
	case len(name) > MaxEnvName:
		return fmt.Errorf("environment variable name longer than %d bytes", MaxEnvName)
	case !envNameOK(name):
		return fmt.Errorf("environment variable %q: must match [A-Za-z_][A-Za-z0-9_]*", name)
	case reservedEnv[name], strings.HasPrefix(name, "LD_"), strings.HasPrefix(name, "BANGER_"):
		return fmt.Errorf("environment variable %q is reserved", name)
	}
	return nil
}

// Validate reports the first problem with s, or nil.
func (s Secret) Validate() error {
	switch {
	case s.Name == "":
		return errors.New("secret: empty name")
	case len(s.Name) > MaxSecretName:
		return fmt.Errorf("secret %.64q: name longer than %d bytes", s.Name, MaxSecretName)
	case !secretNameOK(s.Name):
		return fmt.Errorf("secret %q: name must match [A-Za-z0-9_][A-Za-z0-9_.-]*", s.Name)
	}
	if err := ValidEnvName(s.Env); err != nil {
		return fmt.Errorf("secret %q: %w", s.Name, err)
	}
	if len(s.Placeholder) > MaxPlaceholder || !placeholderOK(s.Placeholder) {
		return fmt.Errorf("secret %q: placeholder must look like banger-secret-NAME-<24 hex>", s.Name)
	}
	return nil
}

// ValidateSecrets checks a VM's secrets and CA certificates: each valid,
// within bounds, names and variables unique.
func ValidateSecrets(secrets []Secret, caCerts []string) error {
	if len(secrets) > MaxSecrets {
		return fmt.Errorf("%d secrets: at most %d", len(secrets), MaxSecrets)
	}
	names := map[string]bool{}
	envs := map[string]bool{}
	for _, s := range secrets {
		if err := s.Validate(); err != nil {
			return err
		}
		if names[s.Name] {
			return fmt.Errorf("secret %q: bound twice", s.Name)
		}
		if envs[s.Env] {
			return fmt.Errorf("secret %q: environment variable %s used twice", s.Name, s.Env)
		}
		names[s.Name], envs[s.Env] = true, true
	}
	if len(caCerts) > MaxCACerts {
		return fmt.Errorf("%d CA certificates: at most %d", len(caCerts), MaxCACerts)
	}
	for i, c := range caCerts {
		if len(c) > MaxCACertLength {
			return fmt.Errorf("CA certificate %d: longer than %d bytes", i+1, MaxCACertLength)
		}
		if err := checkPEMCerts([]byte(c)); err != nil {
			return fmt.Errorf("CA certificate %d: %w", i+1, err)
		}
	}
	return nil
}

// checkPEMCerts accepts one or more PEM CERTIFICATE blocks and nothing else
// but white space.
func checkPEMCerts(data []byte) error {
	n := 0
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" || len(block.Headers) > 0 {
			return fmt.Errorf("PEM block %q: want CERTIFICATE", block.Type)
		}
		n++
		data = rest
	}
	if n == 0 {
		return errors.New("not a PEM certificate")
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return errors.New("text after the PEM certificates")
	}
	return nil
}
