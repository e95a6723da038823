package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// captureStalls keeps the console of a boot that never reached banger's
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { captureStalls(ctx, vms, out); close(done) }()
	wait := func() { time.Sleep(500 * time.Millisecond) }
	write("good", "[    0.5] PCI: Fatal: No config space access function found\n")
	write("hung", "[    0.5] PCI: Fatal: No config space access function found\n")
	wait()
	write("good", "[    0.5] PCI: Fatal: No config space access function found\nbanger-init: stage 1 started uptime=2.4s\n")
	write("hung", "x\n") // the watchdog restarted it: a new, shorter log
	wait()
	write("hung", "x\nbanger-init: stage 1 started uptime=2.4s\n")
	wait()
	os.RemoveAll(filepath.Join(vms, "good"))
	os.RemoveAll(filepath.Join(vms, "hung"))
	wait()
	cancel()
	<-done
	got, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(got) != 1 || filepath.Base(got[0]) != "hung.boot0.log" {
		t.Fatalf("kept %v, want only hung.boot0.log", got)
	}
}
