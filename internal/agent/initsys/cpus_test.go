package initsys

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{
		"0\n": {0}, "0-1": {0, 1}, "0-3,8-9\n": {0, 1, 2, 3, 8, 9}, "": {}, "5": {5}, "1,3": {1, 3},
	} {
		got, err := ParseCPUList(in)
		if err != nil || !slices.Equal(slices.Sorted(maps.Keys(got)), want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"a", "1-", "3-1", "-1", "0-99999", "1,,2"} {
		if _, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q) accepted", bad)
		}
	}
}

// Every present CPU that is not online gets "1" written to its online
// file; online ones are left alone.
func TestOnlineCPUs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("present", "0-2\n")
	write("online", "0\n")
	write("cpu0/online", "")
	write("cpu1/online", "0")
	write("cpu2/online", "0")
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	n, err := onlineCPUs(fd)
	if err != nil || n != 2 {
		t.Fatalf("onlineCPUs = %d, %v; want 2", n, err)
	}
	for cpu, want := range map[string]string{"cpu0": "", "cpu1": "1", "cpu2": "1"} {
		if got, _ := os.ReadFile(filepath.Join(dir, cpu, "online")); string(got) != want {
			t.Errorf("%s/online = %q, want %q", cpu, got, want)
		}
	}
	// A CPU the kernel lists but offers no online file for is an error.
	write("present", "0-3\n")
	os.Remove(filepath.Join(dir, "cpu1/online"))
	write("online", "0,2\n")
	if _, err := onlineCPUs(fd); err == nil {
		t.Error("missing cpu1/online not reported")
	}
}
