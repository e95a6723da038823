package units

import "testing"

func TestParseSize(t *testing.T) {
	good := map[string]int64{"512M": 512 << 20, "10G": 10 << 30, "1.5G": 3 << 29, "4096": 4096, "2GiB": 2 << 30, "64k": 64 << 10, "1T": 1 << 40}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "0", "10X", "1e9", "ten", "10 G", "+5M", "0.0000001"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want error", in, got)
		}
	}
}
