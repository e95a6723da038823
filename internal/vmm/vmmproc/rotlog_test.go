package vmmproc

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readOr(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRotatingLogCapsAndRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serial.log")
	l, err := OpenRotatingLog(path, 10, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"abcd", "efgh", "ijkl"} { // 12 bytes: rotates after 10
		if n, err := l.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got, want := readOr(t, path+".1"), "abcdefghij"; got != want {
		t.Errorf("serial.log.1 = %q, want %q", got, want)
	}
	if got, want := readOr(t, path), "kl"; got != want {
		t.Errorf("serial.log = %q, want %q", got, want)
	}
	// One write much larger than the cap: only the last two files' worth
	// stays, every file within the cap, no .2 with keep 1.
	big := bytes.Repeat([]byte("0123456789"), 100)
	big = append(big, "END"...)
	if n, err := l.Write(big); n != len(big) || err != nil {
		t.Fatalf("big Write = %d, %v", n, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	combined := "kl" + string(big) // what went to the log since the last rotation
	last := len(combined) % 10
	if got, want := readOr(t, path), combined[len(combined)-last:]; got != want {
		t.Errorf("serial.log = %q, want the newest bytes %q", got, want)
	}
	if got, want := readOr(t, path+".1"), combined[len(combined)-last-10:len(combined)-last]; got != want {
		t.Errorf("serial.log.1 = %q, want %q", got, want)
	}
	if _, err := os.Stat(path + ".2"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("serial.log.2 exists with keep 1 (stat: %v)", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestRotatingLogKeepAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmm.log")
	l, err := OpenRotatingLog(path, 4, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("aaaabbbbccccdd"))
	l.Close()
	for name, want := range map[string]string{path: "dd", path + ".1": "cccc", path + ".2": "bbbb", path + ".3": ""} {
		if got := readOr(t, name); got != want {
			t.Errorf("%s = %q, want %q", filepath.Base(name), got, want)
		}
	}
	// Reopening appends and counts what is there; fresh starts over.
	l, err = OpenRotatingLog(path, 4, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("eeX"))
	l.Close()
	if got := readOr(t, path); got != "X" {
		t.Errorf("after reopen serial.log = %q, want %q", got, "X")
	}
	if got := readOr(t, path+".1"); got != "ddee" {
		t.Errorf("after reopen .1 = %q, want %q", got, "ddee")
	}
	l, err = OpenRotatingLog(path, 4, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if readOr(t, path) != "" || readOr(t, path+".1") != "" || readOr(t, path+".2") != "" {
		t.Error("fresh open left old log content")
	}
}

func TestRotatingLogDrain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serial.log")
	l, err := OpenRotatingLog(path, 1<<10, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	in := strings.Repeat("x", 1<<20) + "tail"
	l.Drain(strings.NewReader(in), func(err error) { t.Errorf("warn: %v", err) })
	var total int64
	for _, name := range []string{path, path + ".1"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1<<10 {
			t.Errorf("%s is %d bytes, over the 1 KiB cap", name, fi.Size())
		}
		total += fi.Size()
	}
	if !strings.HasSuffix(readOr(t, path), "tail") || total > 2<<10 {
		t.Errorf("drain kept %d bytes; last file %q", total, readOr(t, path))
	}
}

func TestRotatingLogBadCap(t *testing.T) {
	if _, err := OpenRotatingLog(filepath.Join(t.TempDir(), "l"), 0, 1, false); err == nil {
		t.Error("cap 0 accepted")
	}
	if _, err := OpenRotatingLog(filepath.Join(t.TempDir(), "l"), 10, 0, false); err == nil {
		t.Error("keep 0 accepted")
	}
}
