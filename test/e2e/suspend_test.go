package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// suspendCounterScript runs a counter in the background of the guest: its
// pid in /root/counter.pid, its count in /root/counter.
const suspendCounterScript = `setsid sh -c 'echo $$ > /root/counter.pid; i=0; while :; do i=$((i+1)); echo $i > /root/counter.new; mv /root/counter.new /root/counter; sleep 0.2; done' </dev/null >/dev/null 2>&1 &`

// suspendReadCounter returns the guest counter's pid and current count.
func suspendReadCounter(t *testing.T, d *daemon, name string) (pid string, count int) {
	t.Helper()
	out := d.must(t, "vm", "exec", name, "--", "sh", "-c", "cat /root/counter.pid; cat /root/counter 2>/dev/null || echo 0; kill -0 $(cat /root/counter.pid) && echo alive")
	f := strings.Fields(out)
	if len(f) != 3 || f[2] != "alive" {
		t.Fatalf("counter state %q: not running", out)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("counter value %q: %v", f[1], err)
	}
	return f[0], n
}

// suspendWaitCount waits until the counter (still the process pid) exceeds min.
func suspendWaitCount(t *testing.T, d *daemon, name, pid string, min int) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, n := suspendReadCounter(t, d, name)
		if p != pid {
			t.Fatalf("counter pid changed: %s, was %s", p, pid)
		}
		if n > min {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter stuck at %d (want more than %d)", n, min)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestSuspendResume(t *testing.T) {
	d := newDaemon(t)
	t.Cleanup(d.cleanup)
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")
	d.must(t, "vm", "create", "--name", "sus", "--image", "bb", "--memory", "256", "--vcpus", "1")
	d.must(t, "vm", "exec", "sus", "--", "sh", "-c", suspendCounterScript)
	pid, _ := suspendReadCounter(t, d, "sus")
	before := suspendWaitCount(t, d, "sus", pid, 2)
	vmPID := showVM(t, d, "sus").PID

	d.must(t, "vm", "suspend", "sus")
	if vm := showVM(t, d, "sus"); vm.State != "suspended" || vm.PID != vmPID || !pidAlive(vm.PID) {
		t.Fatalf("after suspend: %+v (vmm pid was %d)", vm, vmPID)
	}
	if _, errOut, code := d.run("vm", "exec", "sus", "--", "true"); code == 0 || !strings.Contains(errOut, "suspended") {
		t.Fatalf("exec on a suspended vm: exit %d, %q", code, errOut)
	}
	if _, errOut, code := d.run("vm", "suspend", "sus"); code == 0 || !strings.Contains(errOut, "already suspended") {
		t.Fatalf("second suspend: exit %d, %q", code, errOut)
	}
	if _, errOut, code := d.run("vm", "start", "sus"); code == 0 || !strings.Contains(errOut, "vm resume") {
		t.Fatalf("start of a suspended vm: exit %d, %q", code, errOut)
	}

	// A daemon restart re-adopts the suspended VM and keeps it suspended.
	d.stop()
	d.start(t)
	if vm := showVM(t, d, "sus"); vm.State != "suspended" || vm.PID != vmPID {
		t.Fatalf("after daemon restart: %+v (vmm pid was %d)", vm, vmPID)
	}

	d.must(t, "vm", "resume", "sus")
	if vm := showVM(t, d, "sus"); vm.State != "running" || vm.PID != vmPID {
		t.Fatalf("after resume: %+v", vm)
	}
	// The same process goes on counting from where it was.
	suspendWaitCount(t, d, "sus", pid, before)
	var health struct {
		Healthy bool `json:"healthy"`
	}
	d.mustJSON(t, &health, "vm", "health", "sus")
	if !health.Healthy {
		t.Fatalf("health after resume: %s", d.must(t, "vm", "health", "sus"))
	}
	if _, errOut, code := d.run("vm", "resume", "sus"); code == 0 || !strings.Contains(errOut, "not suspended") {
		t.Fatalf("resume of a running vm: exit %d, %q", code, errOut)
	}
	// A suspended VM stops at once.
	d.must(t, "vm", "suspend", "sus")
	d.must(t, "vm", "stop", "sus")
	if vm := showVM(t, d, "sus"); vm.State != "stopped" || pidAlive(vmPID) {
		t.Fatalf("stop of a suspended vm: %+v", vm)
	}
}
