package tarname

import "testing"

func TestClean(t *testing.T) {
	good := map[string]string{
		"a":        "a",
		"./a/b/":   "a/b",
		"a//b/./c": "a/b/c",
		".":        ".",
		"./":       ".",
		"a/.git/x": "a/.git/x",
		"..a/b..":  "..a/b..",
	}
	for in, want := range good {
		if got, err := Clean(in); err != nil || got != want {
			t.Errorf("Clean(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/etc/passwd", "..", "../x", "a/../../x", "a/../b", "a/..", "a\x00b"} {
		if got, err := Clean(bad); err == nil {
			t.Errorf("Clean(%q) = %q, want an error", bad, got)
		}
	}
}
