package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The stall scanner keeps the console of a boot that never reached banger's
// init (one restarted and one still stalled when its VM went away) and drops
// the boot that did.
func TestCaptureStallsKeepsOnlyStalledBoots(t *testing.T) {
	vms, out := t.TempDir(), t.TempDir()
	write := func(id, data string) {
		os.MkdirAll(filepath.Join(vms, id), 0o755)
		if err := os.WriteFile(filepath.Join(vms, id, "serial.log"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := newStallScanner(vms, out)
	write("good", "[    0.5] PCI: Fatal: No config space access function found\n")
	write("hung", "[    0.5] PCI: Fatal: No config space access function found\n")
	st.scan()
	write("good", "[    0.5] PCI: Fatal: No config space access function found\nbanger-init: stage 1 started uptime=2.4s\n")
	write("hung", "x\n") // the watchdog restarted it: a new, shorter log
	st.scan()
	write("hung", "x\nbanger-init: stage 1 started uptime=2.4s\n")
	st.scan()
	os.RemoveAll(filepath.Join(vms, "good"))
	os.RemoveAll(filepath.Join(vms, "hung"))
	st.scan()
	got, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(got) != 1 || filepath.Base(got[0]) != "hung.boot0.log" {
		t.Fatalf("kept %v, want only hung.boot0.log", got)
	}
}

// The daemon's stall records are copied out once each, again when one is
// rewritten (the next boot's first stall), and survive their VM's removal.
func TestCaptureStallsCopiesRecords(t *testing.T) {
	vms, out := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(vms, "vm1"), 0o755)
	rec := filepath.Join(vms, "vm1", "stall-1.log")
	st := newStallScanner(vms, out)
	os.WriteFile(rec, []byte("stall 1: APIC frequency too slow"), 0o600)
	st.scan()
	os.WriteFile(rec, []byte("stall 1 of the next boot, longer"), 0o600) // same size
	later := time.Now().Add(time.Second)
	os.Chtimes(rec, later, later) // file times are coarser than two writes
	st.scan()
	os.RemoveAll(filepath.Join(vms, "vm1"))
	st.scan()
	got, err := os.ReadFile(filepath.Join(out, "vm1.stall-1.log"))
	if err != nil || string(got) != "stall 1 of the next boot, longer" {
		t.Fatalf("copied record = %q, %v", got, err)
	}
}
