package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
)

// TestStuckGuest plays a hostile guest against a real VM: a process name
// made of escape sequences reaches `vm ports` escaped (raw in --json), and
// a guest whose work disk is frozen (fsfreeze, so the agent's health check
// blocks in a write) gets `vm health` a clear failure within the guest
// deadline while the daemon keeps answering about everything else.
func TestStuckGuest(t *testing.T) {
	d := sharedDaemon(t)
	img := debianImage(t, d) // perl (perl-base) and fsfreeze (util-linux)
	const vm = "stuck"
	d.must(t, "vm", "create", "--name", vm, "--image", img, "--memory", "512", "--vcpus", "1")
	defer d.run("vm", "delete", "--force", vm)

	t.Run("escape sequences in a process name", func(t *testing.T) {
		// A listener that names itself (comm, 15 bytes at most) with an
		// OSC "set title" sequence and a bell; only a process itself may
		// write its comm.
		stuckGuestShell(t, d, vm, `setsid perl -e 'use Socket; socket(S, PF_INET, SOCK_STREAM, 0) or die; `+
			`setsockopt(S, SOL_SOCKET, SO_REUSEADDR, 1); bind(S, sockaddr_in(4444, INADDR_ANY)) or die; listen(S, 5) or die; `+
			`open(my $f, ">", "/proc/self/comm") or die; print $f "\e]0;owned\ax"; close $f; sleep 900' </dev/null >/dev/null 2>&1 &`)
		var text string
		if err := retryMinute(func() error {
			text = d.must(t, "vm", "ports", vm)
			if !strings.Contains(text, "4444") {
				return errNotYet
			}
			return nil
		}); err != nil {
			t.Fatalf("port 4444 never listed:\n%s", text)
		}
		if strings.ContainsAny(text, "\x1b\x07") || !strings.Contains(text, `\x1b]0;owned\x07x`) {
			t.Errorf("vm ports text output: %q", text)
		}
		var res api.VMPortsResult
		d.mustJSON(t, &res, "vm", "ports", vm)
		raw := false
		for _, p := range res.Ports {
			raw = raw || p.Process == "\x1b]0;owned\ax"
		}
		if !raw {
			t.Errorf("--json lost the raw process name: %+v", res.Ports)
		}
	})

	t.Run("frozen work disk", func(t *testing.T) {
		stuckGuestShell(t, d, vm, freeze+" -f /root")
		defer d.run("vm", "exec", vm, "--", "sh", "-c", freeze+" -u /root")
		type result struct {
			out, errOut string
			code        int
		}
		health := make(chan result, 1)
		go func() {
			o, e, c := d.run("vm", "health", vm)
			health <- result{o, e, c}
		}()
		// While the guest holds the health request, the daemon answers.
		d.must(t, "vm", "list")
		d.must(t, "vm", "show", vm)
		d.must(t, "ping")
		var r result
		select {
		case r = <-health:
		case <-time.After(3 * time.Minute): // a hang guard, far above the 20 s guest deadline
			t.Fatal("vm health still hangs on a frozen guest")
		}
		if r.code != 1 || !strings.Contains(r.out, "no answer from the guest within") {
			t.Fatalf("vm health on a frozen guest: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		var res api.VMHealthResult
		out, _, _ := d.run("--json", "vm", "health", vm)
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Healthy {
			t.Fatalf("vm health --json on a frozen guest: %v %s", err, out)
		}
		stuckGuestShell(t, d, vm, freeze+" -u /root")
		if err := retryMinute(func() error {
			if _, _, code := d.run("vm", "health", vm); code != 0 {
				return errNotYet
			}
			return nil
		}); err != nil {
			t.Fatal("vm health did not recover after the guest thawed its disk")
		}
	})
}

// freeze is util-linux fsfreeze wherever the image keeps it.
const freeze = "PATH=/usr/sbin:/sbin:/usr/bin:/bin fsfreeze"

type stuckGuestErr string

func (e stuckGuestErr) Error() string { return string(e) }

const errNotYet = stuckGuestErr("not yet")

// stuckGuestShell runs a script in the guest and fails on error.
func stuckGuestShell(t *testing.T, d *daemon, vm, script string) string {
	t.Helper()
	return d.must(t, "vm", "exec", vm, "--", "sh", "-c", script)
}
