// Package units parses and formats sizes the way banger's flags take them.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize parses sizes like 512M, 10G, 1.5G, 4096 (bytes), 2T. Suffixes are
// binary (K=1024); an optional trailing "B" or "iB" is accepted. Anything
// else, zero and negative values are errors.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty size")
	}
	t := strings.ToUpper(in)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	if t == "" || strings.ContainsAny(t, " +-eE") {
		return 0, fmt.Errorf("invalid size %q (use e.g. 512M, 10G)", in)
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("invalid size %q (use e.g. 512M, 10G)", in)
	}
	v := f * float64(mult)
	if v > float64(1<<50) {
		return 0, fmt.Errorf("size %q is too large", in)
	}
	if v < 1 {
		return 0, fmt.Errorf("invalid size %q", in)
	}
	return int64(v), nil
}
