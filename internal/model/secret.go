package model

import (
	"slices"
	"strings"
	"time"
)

// Secret is a secret's description. Its value is never in a record: it is
// kept in the daemon's vault and only put into a VM's requests to Hosts
// by the egress proxy.
type Secret struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	OwnerUID int    `json:"owner_uid"`
	// Hosts are the names the secret is bound to: exact ("api.example.com")
	// or every name below a suffix ("*.example.com").
	Hosts []string `json:"hosts"`
	// Header, e.g. "Authorization: Bearer {}": only that header is
	// substituted, its whole value becoming the template with {} = the
	// value. "": the placeholder is replaced in any request header value.
	Header string `json:"header,omitempty"`
	// BasicUser turns on Basic-auth mode (user:placeholder, as git sends it).
	BasicUser string `json:"basic_user,omitempty"`
	// PlainHTTP: the guest's http://HOST/ requests are substituted and sent
	// on as https://HOST/.
	PlainHTTP bool      `json:"plain_http,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// SecretBinding is one secret bound to one VM: the guest holds Placeholder
// (in environment variable Env and /run/banger/secrets/NAME), never the
// value. Placeholders are per binding, per VM; a fork gets new ones.
type SecretBinding struct {
	Name        string `json:"name"`
	Env         string `json:"env"`
	Placeholder string `json:"placeholder"`
	// SecretID is the bound secret; Hosts and PlainHTTP are its, copied at
	// bind time (a secret does not change while bound), for the VM's
	// effective egress policy.
	SecretID  string   `json:"secret_id"`
	Hosts     []string `json:"hosts,omitempty"`
	PlainHTTP bool     `json:"plain_http,omitempty"`
}

// secretAllow is the allowlist entries the bindings add: each bound host
// on port 443, and 80 too in plain-HTTP mode.
func secretAllow(bs []SecretBinding) []string {
	var out []string
	for _, b := range bs {
		for _, h := range b.Hosts {
			out = append(out, h+":443")
			if b.PlainHTTP {
				out = append(out, h+":80")
			}
		}
	}
	return out
}

// withSecrets is p widened by v's bindings: an allowlist gets the bound
// hosts, none becomes an allowlist of just them. open (refused with
// secrets when set) is left as it is.
func withSecrets(p EgressPolicy, bs []SecretBinding) EgressPolicy {
	if len(bs) == 0 || p.Mode == EgressOpen {
		return p
	}
	allow := slices.Clone(p.Allow)
	if p.Mode == EgressNone {
		allow = nil
	}
	seen := map[string]bool{}
	for _, a := range allow {
		seen[strings.ToLower(a)] = true
	}
	for _, a := range secretAllow(bs) {
		if !seen[strings.ToLower(a)] {
			seen[strings.ToLower(a)] = true
			allow = append(allow, a)
		}
	}
	return EgressPolicy{Mode: EgressAllow, Allow: allow, Deny: p.Deny}
}

// Mode says where the value goes: "header H", "basic USER" or "any
// header", with ", plain http" in plain-HTTP mode.
func (s Secret) Mode() string {
	var m string
	switch {
	case s.Header != "":
		m = "header " + s.Header
	case s.BasicUser != "":
		m = "basic " + s.BasicUser
	default:
		m = "any header"
	}
	if s.PlainHTTP {
		m += ", plain http"
	}
	return m
}
