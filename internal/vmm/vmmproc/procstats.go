package vmmproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, fixed at 100
// in the Linux ABI on x86).
const userHZ = 100

// ProcStats reports the CPU time (user + system, in seconds) and resident
// memory of process pid, from /proc/PID/stat and /proc/PID/status.
func ProcStats(pid int) (cpuSeconds float64, rssBytes int64, err error) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("process stats: %w", err)
	}
	cpuSeconds, err = parseStatCPU(stat)
	if err != nil {
		return 0, 0, fmt.Errorf("process stats: pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("process stats: %w", err)
	}
	rssBytes, err = parseStatusRSS(status)
	if err != nil {
		return 0, 0, fmt.Errorf("process stats: pid %d: %w", pid, err)
	}
	return cpuSeconds, rssBytes, nil
}

// parseStatCPU returns utime+stime in seconds from /proc/PID/stat text. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from its last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("bad stat: no command name")
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("bad stat: too few fields")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("bad stat: %w", err)
	}
	return float64(utime+stime) / userHZ, nil
}

// parseStatusRSS returns VmRSS in bytes from /proc/PID/status text; 0 when
// the process has no memory (kernel thread, zombie).
func parseStatusRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		val, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(val), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || strings.TrimSpace(unit) != "kB" {
			return 0, fmt.Errorf("bad VmRSS line %q", sc.Text())
		}
		return kb * 1024, nil
	}
	return 0, sc.Err()
}
