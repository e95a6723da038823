package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A daemon started before any kernel was stored cannot probe KVM, so its
// choice is provisional; pulling the first kernel runs the probe at once
// (no daemon restart), and daemon status reports its answer.
func TestAccelProbedWhenFirstKernelStored(t *testing.T) {
	d := newDaemon(t)
	t.Cleanup(d.cleanup)
	before := accelLine(t, d)
	if !strings.Contains(before, "probed when a kernel is stored") {
		t.Skipf("accelerator final at start, nothing to decide again: %s", before)
	}
	_, stderr, code := d.run("kernel", "pull", "debian-12-cloud")
	if code != 0 {
		t.Fatalf("kernel pull: exit %d: %s", code, stderr)
	}
	after := accelLine(t, d)
	if !strings.Contains(after, "kvm probe") || strings.Contains(after, "probed when a kernel is stored") {
		t.Fatalf("after the first kernel: %q (before: %q); want the probe's answer", after, before)
	}
	// the pull waited for the probe: its progress says so, and what came of it
	if !strings.Contains(stderr, "accelerator: probing kvm with this kernel") || !strings.Contains(stderr, "kvm probe") {
		t.Fatalf("kernel pull's progress does not tell of the probe:\n%s", stderr)
	}
	log, _ := os.ReadFile(filepath.Join(d.dir, "bangerd.out"))
	if !strings.Contains(string(log), `decided_again="a kernel is stored"`) {
		t.Fatalf("daemon log does not record the new decision:\n%s", log)
	}
	d.must(t, "kernel", "pull", "--force", "debian-12-cloud")
	if again := accelLine(t, d); again != after {
		t.Fatalf("a second kernel changed the decision: %q, then %q", after, again)
	}
}

// accelLine is daemon status's accelerator line.
func accelLine(t *testing.T, d *daemon) string {
	t.Helper()
	for _, l := range strings.Split(d.must(t, "daemon", "status"), "\n") {
		if strings.HasPrefix(l, "accelerator:") {
			return l
		}
	}
	t.Fatal("daemon status has no accelerator line")
	return ""
}
