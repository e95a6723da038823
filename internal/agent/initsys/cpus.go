package initsys

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cpuSysDir is where the kernel lists its CPUs.
const cpuSysDir = "/sys/devices/system/cpu"

// cpusOnline, once stage 1 has started bringing CPUs online, yields the
// result; stage 2 waits for it before the VM is announced ready. Nil when
// there is nothing to wait for.
var cpusOnline <-chan error

// startOnliningCPUs brings online, in the background, every CPU the kernel
// has (present) but did not start (online). Under TCG the host boots the
// guest with maxcpus=1 (see qemu.Command.Cmdline): the kernel's boot-time
// code patching then runs on one vCPU, where QEMU 7.2's multi-threaded TCG
// can leave a vCPU executing a stale translation of code another vCPU just
// patched (a boot that loops on an int3 forever). The folder is opened
// first, so the writes still reach sysfs after switch_root.
func startOnliningCPUs(log *slog.Logger) {
	dir, err := unix.Open(cpuSysDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		log.Warn("cpus", "err", err)
		return
	}
	done := make(chan error, 1)
	cpusOnline = done
	go func() {
		defer unix.Close(dir)
		t0 := time.Now()
		n, err := onlineCPUs(dir)
		if n > 0 && err == nil {
			log.Info("cpus online", "started", n, "took", time.Since(t0).Round(time.Millisecond))
		}
		done <- err
	}()
}

// waitCPUs waits for startOnliningCPUs; a CPU that would not start is
// logged, and the VM goes on with the others.
func waitCPUs(log *slog.Logger) {
	if cpusOnline == nil {
		return
	}
	if err := <-cpusOnline; err != nil {
		log.Warn("cpus", "err", err)
	}
	cpusOnline = nil
}

// onlineCPUs writes 1 to cpuN/online (relative to the open cpu folder) for
// every CPU in "present" and not in "online", one at a time (the kernel
// serialises CPU hotplug anyway), and returns how many it started.
func onlineCPUs(dir int) (int, error) {
	present, err := readCPUList(dir, "present")
	if err != nil {
		return 0, err
	}
	online, err := readCPUList(dir, "online")
	if err != nil {
		return 0, err
	}
	n := 0
	for cpu := range present {
		if online[cpu] {
			continue
		}
		fd, err := unix.Openat(dir, "cpu"+strconv.Itoa(cpu)+"/online", unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return n, fmt.Errorf("cpu %d: %w", cpu, err)
		}
		_, err = unix.Write(fd, []byte("1"))
		unix.Close(fd)
		if err != nil {
			return n, fmt.Errorf("start cpu %d: %w", cpu, err)
		}
		n++
	}
	return n, nil
}

// readCPUList reads a kernel CPU list file ("0-3,5").
func readCPUList(dir int, name string) (map[int]bool, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cpu list %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := f.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("cpu list %s: %w", name, err)
	}
	return ParseCPUList(string(buf[:n]))
}

// ParseCPUList parses the kernel's CPU list format: comma-separated CPU
// numbers and ranges ("0", "0-3,8-9"); an empty list is no CPUs.
func ParseCPUList(s string) (map[int]bool, error) {
	cpus := map[int]bool{}
	s = strings.TrimSpace(s)
	if s == "" {
		return cpus, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("cpu list %q: bad entry %q", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b-a > 4096 {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			cpus[c] = true
		}
	}
	return cpus, nil
}
