// Package termsafe makes untrusted text (guest process names, serial
// console output, agent messages) safe to print on a terminal: control
// characters, escape sequences, invalid UTF-8 and bidirectional overrides
// are shown as visible escapes (ESC becomes `\x1b`) instead of reaching the
// terminal, which would interpret them.
package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Line escapes everything a terminal would act on, newlines and tabs
// included: the result is one line of printable text. Use it for fields
// (names, messages) shown in tables and one-line errors.
func Line(s string) string {
	if clean(s, false) {
		return s
	}
	var b strings.Builder
	escape(&b, []byte(s), false)
	return b.String()
}

// Text is Line for multi-line text: newlines, tabs and CR LF pairs are
// kept; a lone CR (which would let later text overwrite a line) is escaped.
func Text(s string) string {
	if clean(s, true) {
		return s
	}
	var b strings.Builder
	escape(&b, []byte(s), true)
	return b.String()
}

// clean reports whether s needs no escaping.
func clean(s string, multiline bool) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			return false
		}
		if r == '\r' && multiline && i+1 < len(s) && s[i+1] == '\n' {
			continue
		}
		if unsafeRune(r, multiline) {
			return false
		}
	}
	return true
}

// unsafeRune reports runes that must be escaped: C0 controls (but for
// newline and tab in multi-line text), DEL, C1 controls (which some
// terminals take as escape sequence introducers), and the bidirectional
// embeddings, overrides and isolates (which reorder what is shown).
func unsafeRune(r rune, multiline bool) bool {
	switch {
	case multiline && (r == '\n' || r == '\t'):
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// escape writes p to b with unsafe runes escaped. A trailing CR in
// multi-line mode is escaped (the caller keeps it back when more may come).
func escape(b *strings.Builder, p []byte, multiline bool) {
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(b, `\x%02x`, p[i])
		case r == '\r' && multiline && i+1 < len(p) && p[i+1] == '\n':
			b.WriteByte('\r')
		case unsafeRune(r, multiline):
			if r < 0x100 {
				fmt.Fprintf(b, `\x%02x`, r)
			} else {
				fmt.Fprintf(b, `\u%04x`, r)
			}
		default:
			b.Write(p[i : i+n])
		}
		i += n
	}
}
