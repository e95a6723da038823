package qemu

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

const (
	cpuinfoPath       = "/proc/cpuinfo"
	baseFrequencyPath = "/sys/devices/system/cpu/cpu0/cpufreq/base_frequency"
)

// hostTSCKHz is the host's nominal CPU (TSC) frequency in kHz: cpufreq's
// base_frequency where the driver exposes it, else the first "cpu MHz" of
// /proc/cpuinfo.
func hostTSCKHz(cpuinfo, baseFrequency string) (int, error) {
	if data, err := os.ReadFile(baseFrequency); err == nil {
		khz, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err == nil && khz > 0 {
			return khz, nil
		}
	}
	f, err := os.Open(cpuinfo)
	if err != nil {
		return 0, fmt.Errorf("host tsc frequency: %w", err)
	}
	defer f.Close()
	khz, err := parseCPUInfoKHz(f)
	if err != nil {
		return 0, fmt.Errorf("host tsc frequency: %s: %w", cpuinfo, err)
	}
	return khz, nil
}

// parseCPUInfoKHz reads the first "cpu MHz" line of /proc/cpuinfo text and
// returns it in kHz.
func parseCPUInfoKHz(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "cpu MHz" {
			continue
		}
		mhz, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || mhz <= 0 || math.IsInf(mhz, 0) || math.IsNaN(mhz) {
			return 0, fmt.Errorf("bad cpu MHz %q", strings.TrimSpace(val))
		}
		return int(math.Round(mhz * 1000)), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no cpu MHz line")
}
