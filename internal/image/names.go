package image

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"banger/internal/api"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidName checks an image name.
func ValidName(n string) error {
	if !nameRE.MatchString(n) {
		return api.Errorf(api.ErrInvalid, "invalid image name %q: use 1-63 of a-z 0-9 . _ -, starting with a letter or digit", n)
	}
	return nil
}

// DefaultName derives an image name from a reference: the last path element
// plus the tag, sanitised ("docker.io/library/alpine:3.19" -> "alpine-3.19").
// A digest reference uses the first 12 hex digits instead of the tag.
func DefaultName(ref string) string {
	base, tag := ref, ""
	if r, err := name.ParseReference(ref); err == nil {
		base = r.Context().RepositoryStr()
		switch v := r.(type) {
		case name.Tag:
			tag = v.TagStr()
		case name.Digest:
			_, hex, _ := strings.Cut(v.DigestStr(), ":")
			tag = hex[:min(12, len(hex))]
		}
	}
	n := path.Base(base)
	if tag != "" {
		n += "-" + tag
	}
	return sanitize(n)
}

// sanitize lower-cases n and maps every character outside [a-z0-9._-] to '-'.
func sanitize(n string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(n) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.TrimLeft(b.String(), "._-")
	if len(out) > 63 {
		out = out[:63]
	}
	if out == "" {
		out = "image"
	}
	return out
}

// ParseSize parses a size such as "512M", "10G", "64K", "1T" (powers of
// 1024) or a plain byte count. Anything else is an error.
func ParseSize(s string) (int64, error) {
	units := map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
	num, mult := s, int64(1)
	if s != "" {
		if m, ok := units[s[len(s)-1]]; ok {
			num, mult = s[:len(s)-1], m
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, api.Errorf(api.ErrInvalid, "invalid size %q: want a number with K, M, G or T, e.g. 512M or 10G", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, api.Errorf(api.ErrInvalid, "invalid size %q: out of range", s)
	}
	return n * mult, nil
}

// humanSize formats a byte count for messages.
func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%dK", (n+1023)/1024)
	}
}
