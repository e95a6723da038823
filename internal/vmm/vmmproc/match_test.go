package vmmproc

import (
	"os"
	"slices"
	"testing"
)

func TestMatchOf(t *testing.T) {
	pidfile := Match{Program: "qemu", Flag: "-pidfile", Path: "/run/banger/vm1/vmm.pid"}
	sock := Match{Program: "firecracker", Flag: "--api-sock", Path: "/run/banger/vm1/fc.sock"}
	tests := []struct {
		m    Match
		argv []string
		want bool
	}{
		{pidfile, []string{"/usr/bin/qemu-system-x86_64", "-M", "microvm", "-pidfile", "/run/banger/vm1/vmm.pid", "-daemonize"}, true},
		{pidfile, []string{"qemu-system-x86_64", "-pidfile", "/run/banger/vm1/../vm1/vmm.pid"}, true},
		{pidfile, []string{"/usr/bin/qemu-system-x86_64", "-pidfile", "/run/banger/vm2/vmm.pid"}, false},
		{pidfile, []string{"/usr/bin/qemu-system-x86_64", "-pidfile"}, false},
		{pidfile, []string{"/usr/bin/sleep", "-pidfile", "/run/banger/vm1/vmm.pid"}, false},
		// The program name is matched on the base name only.
		{pidfile, []string{"/opt/qemu/bin/sleep", "-pidfile", "/run/banger/vm1/vmm.pid"}, false},
		{sock, []string{"/usr/bin/firecracker", "--api-sock", "/run/banger/vm1/fc.sock", "--level", "Warning"}, true},
		{sock, []string{"firecracker", "--api-sock=/run/banger/vm1/../vm1/fc.sock"}, true},
		{sock, []string{"/usr/bin/firecracker", "--api-sock", "/run/banger/vm2/fc.sock"}, false},
		{sock, []string{"/usr/bin/firecracker", "--api-sock"}, false},
		{sock, []string{"/usr/bin/firecracker"}, false},
		// Only the first occurrence of the flag counts.
		{sock, []string{"/usr/bin/firecracker", "--api-sock", "/other", "--api-sock", "/run/banger/vm1/fc.sock"}, false},
		// A longer flag that starts like ours is another flag.
		{sock, []string{"/usr/bin/firecracker", "--api-socket", "/run/banger/vm1/fc.sock"}, false},
		{sock, nil, false},
	}
	for _, tt := range tests {
		if got := tt.m.Of(tt.argv); got != tt.want {
			t.Errorf("%s %s Of(%q) = %v, want %v", tt.m.Program, tt.m.Flag, tt.argv, got, tt.want)
		}
	}
}

func TestArgv(t *testing.T) {
	argv, err := Argv(os.Getpid())
	if err != nil || !slices.Equal(argv, os.Args) {
		t.Errorf("Argv(self) = %q, %v; want %q", argv, err, os.Args)
	}
	if _, err := Argv(-1); err == nil {
		t.Error("Argv(-1): want an error")
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	pid, m := fakeVMM(t, dir)
	procs := m.Find()
	if len(procs) != 1 || procs[0].PID != pid || !m.Of(procs[0].Argv) || procs[0].Match != m {
		t.Errorf("Find = %+v, want pid %d only", procs, pid)
	}
	other := m
	other.Path = dir + "/other.sock"
	if procs := other.Find(); len(procs) != 0 {
		t.Errorf("Find for another run dir = %+v, want none", procs)
	}
}
