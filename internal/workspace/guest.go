package workspace

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode"

	"banger/internal/api"
)

// maxPathLen bounds guest and workspace path lengths.
const maxPathLen = 4096

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

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

// guestRun runs cmd in the guest and fails unless it exits 0.
func guestRun(ctx context.Context, g Guest, what, cmd string, stdin io.Reader, stdout io.Writer) error {
	var errb bytes.Buffer
	code, err := g.Run(ctx, cmd, stdin, stdout, &errb)
	if err != nil {
		return api.Errorf(api.ErrUnavailable, "%s in guest: %w", what, err)
	}
	if code != 0 {
		msg := strings.TrimSpace(errb.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:]
		}
		return fmt.Errorf("%s in guest: exit status %d: %s", what, code, msg)
	}
	return nil
}

// guestProbe reports the state of dir in the guest ("absent", "empty" or
// "nonempty") and whether the guest has git.
func guestProbe(ctx context.Context, g Guest, dir string) (string, bool, error) {
	script := fmt.Sprintf(`d=%s
if [ -L "$d" ] || [ -e "$d" ]; then
  if [ -d "$d" ] && [ ! -L "$d" ] && [ -z "$(ls -A "$d")" ]; then echo empty; else echo nonempty; fi
else echo absent; fi
if command -v git >/dev/null 2>&1; then echo git; else echo nogit; fi`, shellQuote(dir))
	var out bytes.Buffer
	if err := guestRun(ctx, g, "inspect "+dir, script, nil, &out); err != nil {
		return "", false, err
	}
	f := strings.Fields(out.String())
	if len(f) != 2 {
		return "", false, fmt.Errorf("inspect %s in guest: unexpected output %q", dir, out.String())
	}
	return f[0], f[1] == "git", nil
}
