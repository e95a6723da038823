package kernel

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHZ(t *testing.T) {
	for _, c := range []struct {
		name, config string
		want         int
	}{
		{"debian", "CONFIG_HZ_250=y\n# CONFIG_HZ_1000 is not set\nCONFIG_HZ=250\nCONFIG_SCHED_HRTICK=y\n", 250},
		{"thousand", "CONFIG_HZ_1000=y\nCONFIG_HZ=1000\n", 1000},
		{"no HZ line", "CONFIG_HZ_PERIODIC=y\n", 0},
		{"garbage", "CONFIG_HZ=fast\n", 0},
		{"out of range", "CONFIG_HZ=0\n", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(c.config), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := HZ(filepath.Join(dir, "vmlinuz")); got != c.want {
				t.Fatalf("HZ = %d, want %d", got, c.want)
			}
		})
	}
	if got := HZ(filepath.Join(t.TempDir(), "vmlinuz")); got != 0 {
		t.Fatalf("HZ without a config = %d, want 0", got)
	}
}
