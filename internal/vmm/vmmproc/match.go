package vmmproc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Match recognises the VMM process of one run directory by its command
// line: the program's base name contains Program and the first Flag
// ("Flag value" or "Flag=value") names Path.
type Match struct {
	Program string // e.g. "qemu", "firecracker"; also names the VMM in errors
	Flag    string // e.g. "-pidfile", "--api-sock"
	Path    string // the file the flag must name, compared after filepath.Clean
}

// Of reports whether argv is the command line of m's process.
func (m Match) Of(argv []string) bool {
	if len(argv) == 0 || !strings.Contains(filepath.Base(argv[0]), m.Program) {
		return false
	}
	want := filepath.Clean(m.Path)
	for i, a := range argv[1:] {
		if v, ok := strings.CutPrefix(a, m.Flag+"="); ok {
			return filepath.Clean(v) == want
		}
		if a == m.Flag {
			return i+2 < len(argv) && filepath.Clean(argv[i+2]) == want
		}
	}
	return false
}

// Alive reports whether pid runs m's process: not exited, not a zombie (its
// command line is empty), not reused by another program.
func (m Match) Alive(pid int) bool {
	argv, err := Argv(pid)
	return err == nil && m.Of(argv)
}

// reused reports whether pid now runs another program than m's process.
func (m Match) reused(pid int) bool {
	argv, err := Argv(pid)
	return err == nil && len(argv) > 0 && !m.Of(argv)
}

// Find lists the live processes m recognises, whether or not they got to
// write a pidfile (used to clean up after a failed start). It scans /proc.
func (m Match) Find() []Proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var procs []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if argv, err := Argv(pid); err == nil && m.Of(argv) {
			procs = append(procs, Proc{PID: pid, Argv: argv, Match: m})
		}
	}
	return procs
}

// Argv reads /proc/PID/cmdline. It is empty, without error, for a zombie
// (and for a process late in its exit).
func Argv(pid int) ([]string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSuffix(data, []byte{0})
	if len(data) == 0 {
		return nil, nil
	}
	return strings.Split(string(data), "\x00"), nil
}
