package workspace

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"

	"banger/internal/api"
)

// maxPathLen bounds guest and workspace path lengths.
const maxPathLen = 4096

// hasControl reports whether s holds a control character.
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// cleanGuestPath validates an absolute guest directory path.
func cleanGuestPath(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", api.Errorf(api.ErrInvalid, "guest path %q must be absolute", p)
	}
	if hasControl(p) || len(p) > maxPathLen {
		return "", api.Errorf(api.ErrInvalid, "guest path %q has control characters or is too long", p)
	}
	c := path.Clean(p)
	if c == "/" {
		return "", api.Errorf(api.ErrInvalid, "guest path must not be /")
	}
	return c, nil
}

// guestErr wraps the failure of a guest op: a guest that did not answer
// in time is unavailable.
func guestErr(err error, what string) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return api.Errorf(api.ErrUnavailable, "%s in guest: %v", what, err)
	}
	return fmt.Errorf("%s in guest: %w", what, err)
}
