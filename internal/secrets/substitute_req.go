package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/textproto"
	"strings"
)

// boundTo reports whether the secret is bound to host (normalised).
func (s Sub) boundTo(host string) bool {
	for _, h := range s.Hosts {
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(host, "."+rest) {
				return true
			}
		} else if h == host {
			return true
		}
	}
	return false
}

// anyBound reports whether some secret is bound to host (with PlainHTTP on,
// when plain).
func anyBound(subs []Sub, host string, plain bool) bool {
	for _, s := range subs {
		if s.usable() && s.boundTo(host) && (!plain || s.PlainHTTP) {
			return true
		}
	}
	return false
}

func (s Sub) usable() bool { return s.Placeholder != "" && len(s.Value) > 0 }

// substitute replaces, in r's headers, the placeholders of the secrets bound
// to host by their values (each secret in its mode); it returns the
// replacer that takes every value of the VM back out of the response and,
// as denial reasons, the secrets whose placeholders r carries although they
// are not bound to host (or not in plain-HTTP mode, for plain HTTP): those
// are left as they are.
func substitute(r *http.Request, subs []Sub, host string, plain bool) (*replacer, []string, error) {
	rep := &replacer{}
	var denied []string
	// grown is what substitution has added to the request head: a guest
	// repeating a placeholder must not make the host build (and send) a
	// head many times a large value's size.
	grown := 0
	grow := func(added int) bool {
		grown += added
		return grown <= MaxSubstitutedBytes
	}
	for _, s := range subs {
		if !s.usable() {
			continue
		}
		val := string(s.Value)
		rep.addValue(val, s.Placeholder)
		if s.BasicUser != "" {
			rep.addBasic(s.BasicUser, val, s.Placeholder)
		}
		if bound := s.boundTo(host); !bound || plain && !s.PlainHTTP {
			if hasPlaceholder(r, s.Placeholder) {
				denied = append(denied, denyReason(s.Name, bound))
			}
			continue
		}
		switch {
		case s.BasicUser != "":
			vs := r.Header["Authorization"]
			for i, v := range vs {
				user, pass, ok := basicCreds(v)
				if !ok || !strings.Contains(pass, s.Placeholder) {
					continue
				}
				if !grow(strings.Count(pass, s.Placeholder) * (len(val) - len(s.Placeholder))) {
					return rep, denied, errTooMuch
				}
				pass = strings.ReplaceAll(pass, s.Placeholder, val)
				vs[i] = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
				if user != s.BasicUser {
					rep.addBasic(user, val, s.Placeholder)
				}
			}
		case s.Header != "":
			name, tmpl := parseTemplate(s.Header)
			vs := r.Header[name]
			for i, v := range vs {
				if strings.Contains(v, s.Placeholder) {
					if !grow(len(tmpl) + strings.Count(tmpl, "{}")*(len(val)-2) - len(v)) {
						return rep, denied, errTooMuch
					}
					vs[i] = strings.ReplaceAll(tmpl, "{}", val)
				}
			}
		default:
			for _, vs := range r.Header {
				for i, v := range vs {
					if !grow(strings.Count(v, s.Placeholder) * (len(val) - len(s.Placeholder))) {
						return rep, denied, errTooMuch
					}
					vs[i] = strings.ReplaceAll(v, s.Placeholder, val)
				}
			}
		}
	}
	return rep, denied, nil
}

// MaxSubstitutedBytes bounds what substitution may add to one request's
// head (a 64 KiB value, substituted a few times, fits).
const MaxSubstitutedBytes = 256 << 10

var errTooMuch = errors.New("the request carries placeholders too many times")

// parseTemplate splits "Name: template" into the canonical header name and
// the template ("{}" alone when there is no colon).
func parseTemplate(h string) (name, tmpl string) {
	name, tmpl, ok := strings.Cut(h, ":")
	if !ok {
		return textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(h)), "{}"
	}
	return textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name)), strings.TrimSpace(tmpl)
}

// hasPlaceholder reports whether r carries ph in its target or a header
// value (Basic credentials decoded).
func hasPlaceholder(r *http.Request, ph string) bool {
	if strings.Contains(r.URL.RequestURI(), ph) || strings.Contains(r.Host, ph) {
		return true
	}
	for _, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, ph) {
				return true
			}
			if _, pass, ok := basicCreds(v); ok && strings.Contains(pass, ph) {
				return true
			}
		}
	}
	return false
}

// basicCreds decodes "Basic b64(user:pass)".
func basicCreds(v string) (user, pass string, ok bool) {
	scheme, b64, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}

// headHasBasic reports whether a raw HTTP/1 request head carries ph as a
// Basic password.
func headHasBasic(head []byte, ph string) bool {
	for _, line := range bytes.Split(head, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(string(bytes.TrimSpace(k)), "Authorization") {
			continue
		}
		if _, pass, ok := basicCreds(string(v)); ok && strings.Contains(pass, ph) {
			return true
		}
	}
	return false
}

// denyReason says why a placeholder of secret name was left in a request.
func denyReason(name string, bound bool) string {
	if bound {
		return "placeholder of secret " + name + " sent over plain HTTP (not substituted)"
	}
	return "placeholder of secret " + name + " sent to unbound host"
}
