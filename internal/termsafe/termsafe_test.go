package termsafe

import (
	"bytes"
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nginx", "nginx"},
		{"héllo wörld ✓", "héllo wörld ✓"},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"\x1b[2J\x1b[31mred", `\x1b[2J\x1b[31mred`},
		{"a\nb\tc\rd", `a\x0ab\x09c\x0dd`},
		{"del\x7f", `del\x7f`},
		{"c1 \u009b31m", `c1 \x9b31m`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},
		{"bidi \u202egnp.exe", `bidi \u202egnp.exe`},
		{"isolate \u2066x\u2069", `isolate \u2066x\u2069`},
		{"replacement \ufffd char", "replacement \ufffd char"},
		{"", ""},
	} {
		if got := Line(tc.in); got != tc.want {
			t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"line one\r\nline two\n\tindented\n", "line one\r\nline two\n\tindented\n"},
		{"progress 10%\rprogress 99%", `progress 10%\x0dprogress 99%`},
		{"boot\x1b[0m ok\n", "boot\\x1b[0m ok\n"},
		{"ends in cr\r", `ends in cr\x0d`},
		{"bell\a\n", "bell\\x07\n"},
	} {
		if got := Text(tc.in); got != tc.want {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestWriterSplits feeds a stream one byte at a time: multi-byte runes and
// CR LF pairs split between writes come out as if written whole.
func TestWriterSplits(t *testing.T) {
	in := "ok ✓ é\r\nnext\x1b[31m\rover\xff\u202e end\r"
	want := Text(in)
	for _, size := range []int{1, 2, 3, 5, len(in)} {
		var out bytes.Buffer
		w := NewWriter(&out)
		for i := 0; i < len(in); i += size {
			end := min(i+size, len(in))
			if n, err := w.Write([]byte(in[i:end])); err != nil || n != end-i {
				t.Fatalf("write: %d, %v", n, err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("chunks of %d: got %q, want %q", size, out.String(), want)
		}
		if strings.ContainsAny(out.String(), "\x1b\u202e") {
			t.Errorf("chunks of %d: escape reached the output: %q", size, out.String())
		}
	}
}
