package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// forwardList is `vm forward NAME --list --json`.
type forwardList struct {
	Name     string `json:"name"`
	Mode     string `json:"mode"`
	Forwards []struct {
		HostAddrs []string `json:"host_addrs"`
		HostPort  int      `json:"host_port"`
		GuestPort int      `json:"guest_port"`
		Auto      bool     `json:"auto"`
		Conflict  string   `json:"conflict"`
	} `json:"forwards"`
}

// forwardFreePort is a host loopback port free right now.
func forwardFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// forwardCurl runs the host's curl on localhost:port/path and returns its
// output and exit code (7: could not connect).
func forwardCurl(port int, path string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "60", fmt.Sprintf("http://localhost:%d%s", port, path)).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		return err.Error(), -1
	}
	return string(out), 0
}

// forwardWait retries f for up to a minute (guest servers start, and auto
// forwards follow, asynchronously).
func forwardWait(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// forwardHTTPD starts busybox httpd in the guest on addr, serving /root/www.
func forwardHTTPD(t *testing.T, d *daemon, vm, addr string) {
	t.Helper()
	guestShell(t, d, vm, `mkdir -p /root/www && echo "hello from `+vm+`" > /root/www/index.html &&
ln -sf /bin/busybox /bin/httpd && ln -sf /bin/busybox /bin/setsid &&
setsid httpd -f -p `+addr+` -h /root/www </dev/null >/dev/null 2>&1 &
true`)
}

// TestForward: a guest-loopback HTTP server reached with curl on the host's
// localhost, a 100 MB transfer, another host user refused by the kernel,
// forwards surviving a daemon restart, auto mode following a server, two
// VMs asking for one port, and forwards ending with their VM.
func TestForward(t *testing.T) {
	group, gid := ownersGroup(t)
	bob := ownersNewUser(t, "f", group, gid)

	d := newNetDaemon(t)
	t.Cleanup(func() {
		cleanupNet(d)
		exec.Command("nft", "delete", "table", "inet", tableOf(d.bridge)+"-fwd").Run()
	})
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")
	d.must(t, "vm", "create", "--name", "fwa", "--image", "bb", "--memory", "256", "--vcpus", "1")
	d.must(t, "vm", "create", "--name", "fwb", "--image", "bb", "--memory", "256", "--vcpus", "1", "--forward", "auto")

	forwardHTTPD(t, d, "fwa", "127.0.0.1:9000")
	hp := forwardFreePort(t)
	out := d.must(t, "vm", "forward", "fwa", fmt.Sprintf("%d:9000", hp))
	if !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d", hp)) {
		t.Errorf("vm forward printed %q", out)
	}

	t.Run("curl on localhost reaches a guest-loopback server", func(t *testing.T) {
		var body string
		forwardWait(t, "the guest's httpd through the forward", func() bool {
			b, code := forwardCurl(hp, "/index.html")
			body = b
			return code == 0
		})
		if strings.TrimSpace(body) != "hello from fwa" {
			t.Fatalf("curl localhost:%d: %q", hp, body)
		}
		var l forwardList
		d.mustJSON(t, &l, "vm", "forward", "fwa", "--list")
		if l.Mode != "off" || len(l.Forwards) != 1 || l.Forwards[0].HostPort != hp || l.Forwards[0].GuestPort != 9000 || l.Forwards[0].Auto {
			t.Errorf("forward list %+v", l)
		}
		// vm list and vm show carry the forward too
		want := fmt.Sprintf("%d->9000", hp)
		for _, args := range [][]string{{"vm", "list"}, {"vm", "show", "fwa"}} {
			if out := d.must(t, args...); !strings.Contains(out, want) {
				t.Errorf("%v does not show the forward %s:\n%s", args, want, out)
			}
		}
		var shown struct {
			Forwards []struct {
				HostPort  int `json:"host_port"`
				GuestPort int `json:"guest_port"`
			} `json:"forwards"`
		}
		d.mustJSON(t, &shown, "vm", "show", "fwa")
		if f := shown.Forwards; len(f) != 1 || f[0].HostPort != hp || f[0].GuestPort != 9000 {
			t.Errorf("vm show --json forwards: %+v", f)
		}
	})

	t.Run("100 MB byte-exact", func(t *testing.T) {
		sum := strings.Fields(guestShell(t, d, "fwa", "busybox dd if=/dev/urandom of=/root/www/big bs=1M count=100 2>/dev/null && busybox sha256sum /root/www/big"))[0]
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/big", hp))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		if n != 100<<20 || hex.EncodeToString(h.Sum(nil)) != sum {
			t.Fatalf("got %d bytes with sha256 %x, want %d with %s", n, h.Sum(nil), 100<<20, sum)
		}
	})

	t.Run("another host user is refused by the kernel", func(t *testing.T) {
		out, err := bob.exec("/usr/bin/curl", "-sS", "--max-time", "20", fmt.Sprintf("http://127.0.0.1:%d/index.html", hp))
		var ee *exec.ExitError
		// 7: could not connect (the daemon never saw the connection); an
		// accepted then dropped connection would be 52 or 56.
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Fatalf("bob's curl: %v: %s", err, out)
		}
		if body, code := forwardCurl(hp, "/index.html"); code != 0 || strings.TrimSpace(body) != "hello from fwa" {
			t.Fatalf("root's curl after bob's: exit %d %q", code, body)
		}
	})

	t.Run("forwards survive a daemon restart", func(t *testing.T) {
		d.stop()
		if _, code := forwardCurl(hp, "/index.html"); code != 7 {
			t.Errorf("with the daemon stopped, curl exit %d, want 7 (nothing listens)", code)
		}
		d.start(t)
		body, code := forwardCurl(hp, "/index.html")
		if code != 0 || strings.TrimSpace(body) != "hello from fwa" {
			t.Fatalf("after restart: exit %d %q", code, body)
		}
		out, err := bob.exec("/usr/bin/curl", "-sS", "--max-time", "20", fmt.Sprintf("http://127.0.0.1:%d/", hp))
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Fatalf("bob after restart: %v: %s", err, out)
		}
	})

	q := forwardFreePort(t)
	t.Run("auto mode follows a server started after boot", func(t *testing.T) {
		forwardHTTPD(t, d, "fwb", "127.0.0.1:"+strconv.Itoa(q))
		var body string
		forwardWait(t, "the auto forward", func() bool {
			b, code := forwardCurl(q, "/index.html")
			body = b
			return code == 0
		})
		if strings.TrimSpace(body) != "hello from fwb" {
			t.Fatalf("curl localhost:%d: %q", q, body)
		}
		var l forwardList
		d.mustJSON(t, &l, "vm", "forward", "fwb", "--list")
		if l.Mode != "auto" || len(l.Forwards) != 1 || !l.Forwards[0].Auto || l.Forwards[0].HostPort != q {
			t.Errorf("forward list %+v", l)
		}
		var ports struct {
			Ports []struct {
				Port      int    `json:"port"`
				Forwarded string `json:"forwarded"`
			} `json:"ports"`
		}
		d.mustJSON(t, &ports, "vm", "ports", "fwb")
		found := false
		for _, p := range ports.Ports {
			if p.Port == q {
				found = strings.Contains(p.Forwarded, fmt.Sprintf("127.0.0.1:%d", q))
			}
		}
		if !found {
			t.Errorf("vm ports does not show %d forwarded: %+v", q, ports)
		}
		guestShell(t, d, "fwb", "busybox killall httpd")
		forwardWait(t, "the auto forward to end", func() bool {
			_, code := forwardCurl(q, "/")
			return code == 7
		})
	})

	t.Run("two VMs asking for one port: one gets it, the other reports the conflict", func(t *testing.T) {
		r := forwardFreePort(t)
		if _, errOut, code := d.run("vm", "forward", "fwa", strconv.Itoa(r)); code != 0 {
			t.Fatalf("forward fwa %d: %s", r, errOut)
		}
		forwardHTTPD(t, d, "fwb", "0.0.0.0:"+strconv.Itoa(r))
		var l forwardList
		forwardWait(t, "fwb's conflict", func() bool {
			d.mustJSON(t, &l, "vm", "forward", "fwb", "--list")
			return len(l.Forwards) == 1
		})
		if c := l.Forwards[0].Conflict; !strings.Contains(c, `vm "fwa"`) || l.Forwards[0].GuestPort != r {
			t.Errorf("fwb's forward %+v, want a conflict naming vm fwa", l.Forwards[0])
		}
		_, errOut, code := d.run("vm", "forward", "fwb", strconv.Itoa(r))
		if code != 1 || !strings.Contains(errOut, `vm "fwa"`) {
			t.Errorf("explicit forward of a held port: exit %d: %s", code, errOut)
		}
		out := d.must(t, "vm", "forward", "fwb", strconv.Itoa(r), "--remap")
		if strings.Contains(out, fmt.Sprintf(":%d ", r)) {
			t.Errorf("--remap kept the busy port: %s", out)
		}
		guestShell(t, d, "fwb", "busybox killall httpd")
	})

	t.Run("a unix socket forward is 0600 and made as the caller", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "fwa.sock")
		d.must(t, "vm", "forward", "fwa", "--unix", sock, "9000")
		fi, err := os.Lstat(sock)
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket %v, %v: want a 0600 socket", fi, err)
		}
		out, err := exec.Command("curl", "-sS", "--max-time", "60", "--unix-socket", sock, "http://fwa/index.html").Output()
		if err != nil || strings.TrimSpace(string(out)) != "hello from fwa" {
			t.Fatalf("curl --unix-socket: %v %q", err, out)
		}
		d.must(t, "vm", "forward", "fwa", "--remove", "--unix", sock)
		if _, err := os.Lstat(sock); err == nil {
			t.Errorf("the socket is left after --remove")
		}
	})

	t.Run("forwards end with their VM", func(t *testing.T) {
		d.must(t, "vm", "delete", "--force", "fwa")
		if _, code := forwardCurl(hp, "/"); code != 7 {
			t.Errorf("after delete, curl exit %d, want 7", code)
		}
		rules, _ := exec.Command("nft", "list", "table", "inet", tableOf(d.bridge)+"-fwd").CombinedOutput()
		if strings.Contains(string(rules), fmt.Sprintf("dport %d ", hp)) {
			t.Errorf("owner rule of the deleted VM's port left:\n%s", rules)
		}
	})
}
