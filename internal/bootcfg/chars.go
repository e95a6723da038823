package bootcfg

import "strings"

// Validators of the config's names. They are plain loops rather than
// regular expressions: the guest's init checks its config at every boot,
// and compiling the expressions cost it about 30 ms of emulated CPU under
// TCG (docs/performance.md, "The kernel's own time").

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// allIn reports whether every byte of s passes ok.
func allIn(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func envNameChar(c byte) bool    { return isAlnum(c) || c == '_' }
func secretNameChar(c byte) bool { return isAlnum(c) || c == '_' || c == '.' || c == '-' }
func lowerHex(c byte) bool       { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// envNameOK: [A-Za-z_][A-Za-z0-9_]*.
func envNameOK(s string) bool {
	return s != "" && (s[0] < '0' || s[0] > '9') && allIn(s, envNameChar)
}

// secretNameOK: [A-Za-z0-9_][A-Za-z0-9_.-]*.
func secretNameOK(s string) bool {
	return s != "" && s[0] != '.' && s[0] != '-' && allIn(s, secretNameChar)
}

// placeholderPrefix starts every secret's placeholder.
const placeholderPrefix = "banger-secret-"

// placeholderOK: banger-secret-[A-Za-z0-9_.-]+-[0-9a-f]{24}.
func placeholderOK(s string) bool {
	rest, ok := strings.CutPrefix(s, placeholderPrefix)
	if !ok || len(rest) < 1+1+24 {
		return false
	}
	mid, hex := rest[:len(rest)-25], rest[len(rest)-24:]
	return rest[len(rest)-25] == '-' && allIn(mid, secretNameChar) && allIn(hex, lowerHex)
}

// ValidHostname reports whether h is a hostname banger gives a guest: at
// most 64 bytes of dot-separated labels, each 1 to 63 letters, digits and
// hyphens, neither starting nor ending with a hyphen.
func ValidHostname(h string) bool {
	if h == "" || len(h) > 64 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			!allIn(label, func(c byte) bool { return isAlnum(c) || c == '-' }) {
			return false
		}
	}
	return true
}
