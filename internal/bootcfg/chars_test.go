package bootcfg

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestValidatorsMatchTheirExpressions: each loop validator accepts exactly
// what the regular expression it replaced accepts, on the edge cases and on
// 200,000 random strings over an alphabet of the characters that matter.
func TestValidatorsMatchTheirExpressions(t *testing.T) {
	cases := []struct {
		name string
		re   *regexp.Regexp
		f    func(string) bool
		seed []string
	}{
		{"env name", regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`), envNameOK,
			[]string{"", "A", "_", "9A", "A9", "a-b", "a.b", "GH_TOKEN", "é"}},
		{"secret name", regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`), secretNameOK,
			[]string{"", "a", ".a", "-a", "a.-_9", "9", "a b", "a/b"}},
		{"placeholder", regexp.MustCompile(`^banger-secret-[A-Za-z0-9_.-]+-[0-9a-f]{24}$`), placeholderOK,
			[]string{"", "banger-secret-", "banger-secret-gh-0123456789abcdef01234567", "banger-secret--0123456789abcdef01234567",
				"banger-secret---0123456789abcdef01234567", "banger-secret-gh-0123456789abcdef0123456", "banger-secret-gh-0123456789ABCDEF01234567",
				"banger-secret-gh_0123456789abcdef01234567", "banger-secret-a-b-0123456789abcdef01234567", "xbanger-secret-gh-0123456789abcdef01234567"}},
		{"hostname", regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`),
			func(s string) bool { return ValidHostname(s) }, []string{"", "a", "-a", "a-", "a.b", "a..b", ".a", "a.", "a-b.c-d", strings.Repeat("a", 63), strings.Repeat("a", 64)}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "aZ09_.-/ é"
	for _, c := range cases {
		try := func(s string) {
			want := c.re.MatchString(s)
			if c.name == "hostname" {
				want = want && len(s) <= 64
			}
			if got := c.f(s); got != want {
				t.Fatalf("%s %q: validator says %v, expression %v", c.name, s, got, want)
			}
		}
		for _, s := range c.seed {
			try(s)
		}
		for i := 0; i < 50000; i++ {
			var b strings.Builder
			if c.name == "placeholder" && r.IntN(2) == 0 {
				b.WriteString(placeholderPrefix)
			}
			for n := r.IntN(8); n > 0; n-- {
				b.WriteByte(alphabet[r.IntN(len(alphabet))])
			}
			if c.name == "placeholder" && r.IntN(2) == 0 {
				b.WriteString("-0123456789abcdef0123456"[r.IntN(3):])
				if r.IntN(2) == 0 {
					b.WriteByte("7f"[r.IntN(2)])
				}
			}
			try(b.String())
		}
	}
}
