package main

import (
	"os"
	"path/filepath"
	"testing"
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
