package secrets

import (
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"

	"banger/internal/api"
	"banger/internal/bootcfg"
	"banger/internal/egress"
)

// Limits on a secret's description.
const (
	MaxHosts     = 16
	maxHeaderLen = 1024
	maxUserLen   = 256
)

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)
	headerRE = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]+:`)
)

// CheckName refuses a name that is not a letter then up to 62 letters,
// digits, '-' or '_' (it is part of the placeholder and of a file name in
// the guest).
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return api.Errorf(api.ErrInvalid, "secret name %q is not valid (a letter, then letters, digits, '-' or '_'; at most 63)", name)
	}
	return nil
}

// CheckEnv refuses a name that cannot be a secret's environment variable
// (as the guest checks it: reserved ones like PATH or SSL_CERT_FILE too).
func CheckEnv(env string) error {
	if err := bootcfg.ValidEnvName(env); err != nil {
		return api.Errorf(api.ErrInvalid, "%v", err)
	}
	return nil
}

// DefaultEnv is the environment variable a binding uses by default: the
// name upper-cased, '-' as '_'.
func DefaultEnv(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// NormalHosts checks hosts (DNS names, or *.suffix for every name below
// suffix; no ports, no addresses) and returns them lower-cased, without
// duplicates.
func NormalHosts(hosts []string) ([]string, error) {
	if len(hosts) == 0 {
		return nil, api.Errorf(api.ErrInvalid, "a secret needs at least one --host it is sent to")
	}
	if len(hosts) > MaxHosts {
		return nil, api.Errorf(api.ErrInvalid, "a secret is bound to at most %d hosts, got %d", MaxHosts, len(hosts))
	}
	var out []string
	for _, h := range hosts {
		n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		bare := strings.TrimPrefix(n, "*.")
		if !egress.ValidName(bare) || !strings.Contains(bare, ".") || strings.Contains(bare, "*") || isNumeric(bare) {
			return nil, api.Errorf(api.ErrInvalid, "host %q is not a DNS name (want api.example.com or *.example.com)", h)
		}
		if bare != n && isPublicSuffix(bare) {
			return nil, api.Errorf(api.ErrInvalid, "host %q: %s is a public suffix (anyone may register a name below it, and the value would go there): name the hosts themselves", h, bare)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// isPublicSuffix reports whether names below name are registered by
// unrelated parties: a public suffix (co.uk), including the shared hosting
// ones of the list's private part (github.io, herokuapp.com).
func isPublicSuffix(name string) bool {
	ps, _ := publicsuffix.PublicSuffix(name)
	return ps == name
}

// isNumeric reports whether name's last label is all digits (an address,
// not a name).
func isNumeric(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	return strings.Trim(last, "0123456789") == ""
}

// CheckHeader refuses a header template that is not "Name: ...{}...".
func CheckHeader(h string) error {
	if h == "" {
		return nil
	}
	if len(h) > maxHeaderLen || !headerRE.MatchString(h) || !strings.Contains(h, "{}") || hasControl([]byte(h)) {
		return api.Errorf(api.ErrInvalid, "--header %q: want 'Name: template' with {} where the value goes, e.g. 'Authorization: Bearer {}'", h)
	}
	return nil
}

// CheckBasicUser refuses a Basic-auth user name with ':' or control bytes.
func CheckBasicUser(u string) error {
	if len(u) > maxUserLen || strings.Contains(u, ":") || hasControl([]byte(u)) {
		return api.Errorf(api.ErrInvalid, "--basic user %q is not valid (no ':' or control characters, at most %d bytes)", u, maxUserLen)
	}
	return nil
}

// CheckValue refuses an empty or oversized value, or one with control
// characters (it goes into HTTP headers). The message never quotes it.
func CheckValue(v []byte) error {
	switch {
	case len(v) == 0:
		return api.Errorf(api.ErrInvalid, "the secret value is empty (give it on standard input)")
	case len(v) > MaxValueBytes:
		return api.Errorf(api.ErrInvalid, "the secret value is %d bytes; at most %d", len(v), MaxValueBytes)
	case hasControl(v):
		return api.Errorf(api.ErrInvalid, "the secret value holds control characters (newlines inside it, NUL...): it must fit in an HTTP header")
	}
	return nil
}

func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}
