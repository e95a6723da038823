package e2e

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleAgentSleeps: once a VM is ready and the daemon has hung up its
// control port, the guest's agent (PID 1) uses no CPU while nothing is
// asked of it: it sleeps until the host connects to the port again (the
// virtio console's SIGIO) instead of polling the port ten times a second,
// which cost an idle VM about 7% of a host core under TCG. A host that
// connects again is answered at once, each time.
func TestIdleAgentSleeps(t *testing.T) {
	d := sharedDaemon(t)
	const vm = "idle"
	d.must(t, "vm", "create", "--name", vm, "--image", "bb", "--memory", "256", "--vcpus", "1")
	defer d.run("vm", "delete", "--force", vm)

	// PID 1's user and system ticks (1/100 s) over 5 s; the session only
	// sleeps between the two reads.
	out := guestShell(t, d, vm, `a=$(cut -d" " -f14,15 /proc/1/stat); sleep 5; b=$(cut -d" " -f14,15 /proc/1/stat); echo $a $b`)
	var n [4]int
	f := strings.Fields(out)
	if len(f) != 4 {
		t.Fatalf("guest printed %q, want four tick counts", out)
	}
	for i := range n {
		v, err := strconv.Atoi(f[i])
		if err != nil {
			t.Fatalf("guest printed %q: %v", out, err)
		}
		n[i] = v
	}
	if ticks := n[2] + n[3] - n[0] - n[1]; ticks > 5 {
		t.Errorf("the idle agent used %d ticks of CPU in 5 s (before the fix: about 35 under TCG); want at most 5", ticks)
	}

	sock := filepath.Join(showVM(t, d, vm).Dir, "run", "ctl.sock")
	for i := 0; i < 3; i++ {
		time.Sleep(time.Second)
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("dial the control port: %v", err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		t0 := time.Now()
		fmt.Fprintf(c, "{\"op\":\"ping\"}\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || !strings.Contains(line, `"ok":true`) {
			t.Fatalf("ping %d over the control port after a second idle: %q, %v (after %v)", i, line, err, time.Since(t0).Round(time.Millisecond))
		}
	}
}
