package oci

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Auth says which credentials a pull may use. The daemon runs as root, so it
// never consults its own docker config: the caller's config file is named
// explicitly (and the caller's right to read it is checked by the service).
type Auth struct {
	// DockerConfig is the path of a docker config.json; empty or missing
	// means anonymous access.
	DockerConfig string
	// Username and Password, when set, are used for every registry and take
	// precedence over DockerConfig.
	Username string
	Password string
}

// dockerConfig is the subset of ~/.docker/config.json banger understands.
// Credential helpers (credsStore, credHelpers) are not run: the daemon would
// run them as root on the caller's behalf.
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// keychain builds the authn.Keychain for this Auth.
func (a Auth) keychain() (authn.Keychain, error) {
	if a.Username != "" || a.Password != "" {
		return staticKeychain{authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password})}, nil
	}
	if a.DockerConfig == "" {
		return staticKeychain{authn.Anonymous}, nil
	}
	data, err := os.ReadFile(a.DockerConfig)
	if errors.Is(err, fs.ErrNotExist) {
		return staticKeychain{authn.Anonymous}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read docker config: %w", err)
	}
	var cf dockerConfig
	if err := json.Unmarshal(data, &cf); err != nil {
		return nil, fmt.Errorf("parse docker config %s: %w", a.DockerConfig, err)
	}
	kc := configKeychain{}
	for key, entry := range cf.Auths {
		cfg := authn.AuthConfig{
			Username:      entry.Username,
			Password:      entry.Password,
			IdentityToken: entry.IdentityToken,
			RegistryToken: entry.RegistryToken,
		}
		if entry.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(entry.Auth)
			if err != nil {
				return nil, fmt.Errorf("parse docker config %s: auth for %s is not base64", a.DockerConfig, key)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("parse docker config %s: auth for %s is not user:password", a.DockerConfig, key)
			}
			cfg.Username, cfg.Password = user, pass
		}
		kc[registryKey(key)] = cfg
	}
	return kc, nil
}

// registryKey reduces a docker config key ("https://host:5000/v1/",
// "host:5000") to the registry host, with Docker Hub's aliases folded.
func registryKey(key string) string {
	k := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	if i := strings.IndexByte(k, '/'); i >= 0 {
		k = k[:i]
	}
	k = strings.ToLower(k)
	switch k {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return "index.docker.io"
	}
	return k
}

type staticKeychain struct{ a authn.Authenticator }

func (s staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return s.a, nil }

// configKeychain maps registry hosts to credentials.
type configKeychain map[string]authn.AuthConfig

func (c configKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	cfg, ok := c[registryKey(r.RegistryStr())]
	if !ok {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(cfg), nil
}
