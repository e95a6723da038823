package kernel

import (
	"regexp"
	"sort"
	"strings"

	"banger/internal/api"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// checkName validates a kernel name: it becomes a folder name, so no path
// characters.
func checkName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") {
		return api.Errorf(api.ErrInvalid, "invalid kernel name %q: use 1-63 of a-z 0-9 . _ - starting with a letter or digit", name)
	}
	return nil
}

// closeNames returns the candidates within a small edit distance of name, or
// sharing a prefix with it, closest first.
func closeNames(name string, candidates []string) []string {
	type scored struct {
		name string
		d    int
	}
	var out []scored
	for _, c := range candidates {
		d := editDistance(name, c)
		if d <= max(2, len(name)/3) || (len(name) >= 3 && (strings.HasPrefix(c, name) || strings.HasPrefix(name, c))) {
			out = append(out, scored{c, d})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].d != out[j].d {
			return out[i].d < out[j].d
		}
		return out[i].name < out[j].name
	})
	names := make([]string, len(out))
	for i, o := range out {
		names[i] = o.name
	}
	return names
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
