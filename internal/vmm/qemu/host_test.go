package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const cpuinfoSample = `processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) CPU @ 2.30GHz
cpu MHz		: 2299.998
cache size	: 46080 KB

processor	: 1
cpu MHz		: 1200.000
`

func TestParseCPUInfoKHz(t *testing.T) {
	tests := []struct {
		name, in string
		want     int
		wantErr  bool
	}{
		{"first cpu", cpuinfoSample, 2299998, false},
		{"integer mhz", "cpu MHz : 3000\n", 3000000, false},
		{"no line", "processor : 0\nmodel name : x\n", 0, true},
		{"garbage", "cpu MHz : fast\n", 0, true},
		{"zero", "cpu MHz : 0.000\n", 0, true},
		{"cpu MHz dynamic key", "cpu MHz dynamic : 100\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUInfoKHz(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseCPUInfoKHz = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestHostTSCKHz(t *testing.T) {
	dir := t.TempDir()
	cpuinfo := filepath.Join(dir, "cpuinfo")
	base := filepath.Join(dir, "base_frequency")
	if err := os.WriteFile(cpuinfo, []byte(cpuinfoSample), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := hostTSCKHz(cpuinfo, base); err != nil || got != 2299998 {
		t.Errorf("without base_frequency: %d, %v; want 2299998 from cpuinfo", got, err)
	}
	if err := os.WriteFile(base, []byte("2100000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := hostTSCKHz(cpuinfo, base); err != nil || got != 2100000 {
		t.Errorf("with base_frequency: %d, %v; want 2100000", got, err)
	}
	if _, err := hostTSCKHz(filepath.Join(dir, "missing"), filepath.Join(dir, "missing2")); err == nil {
		t.Error("no source: want an error")
	}
}
