package vmmproc

import (
	"os"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	// comm with spaces and parentheses; utime=250 stime=50 ticks.
	stat := "4242 (qemu (x) y) S 1 4240 4240 0 -1 4194624 2000 0 0 0 250 50 0 0 20 0 3 0 100 300000000 5000 " +
		"18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 3.0 {
		t.Errorf("parseStatCPU = %v, %v; want 3.0", got, err)
	}
	for _, bad := range []string{"", "1 (x S 1 2", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 1"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\tqemu-system-x86\nVmPeak:\t  999 kB\nVmRSS:\t  123456 kB\nRssAnon:\t 1 kB\n"
	if got, err := parseStatusRSS([]byte(status)); err != nil || got != 123456*1024 {
		t.Errorf("parseStatusRSS = %d, %v; want %d", got, err, 123456*1024)
	}
	if got, err := parseStatusRSS([]byte("Name:\tkthreadd\nState:\tS\n")); err != nil || got != 0 {
		t.Errorf("no VmRSS: %d, %v; want 0, nil", got, err)
	}
	if _, err := parseStatusRSS([]byte("VmRSS:\t lots kB\n")); err == nil {
		t.Error("bad VmRSS accepted")
	}
}

func TestProcStatsSelf(t *testing.T) {
	// Burn CPU until the kernel has charged this process at least one tick.
	var cpu float64
	var rss int64
	var err error
	for x := 0; cpu == 0; x++ {
		for i := range 10_000_000 {
			x ^= i
		}
		if cpu, rss, err = ProcStats(os.Getpid()); err != nil {
			t.Fatalf("ProcStats(self): %v", err)
		}
	}
	if rss <= 0 {
		t.Errorf("rss = %d, want > 0", rss)
	}
	if _, _, err := ProcStats(1 << 30); err == nil {
		t.Error("ProcStats of a pid that cannot exist succeeded")
	}
}
