package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
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

	"banger/internal/api"
)

// runOpenSSH runs one of the system's OpenSSH tools (ssh, scp, sftp) with the
// config file cfg, never prompting.
func runOpenSSH(t *testing.T, cfg, tool string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, append([]string{"-F", cfg, "-o", "BatchMode=yes"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return o.String(), e.String(), 0
}

// guestShell runs a shell script in the guest with vm exec and fails on error.
func guestShell(t *testing.T, d *daemon, vm, script string) string {
	t.Helper()
	return d.must(t, "vm", "exec", vm, "--", "sh", "-c", script)
}

// retryMinute retries f until it succeeds or a minute passes (guest services
// start asynchronously); it returns f's last error.
func retryMinute(f func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestGuestAccess drives one busybox VM with banger's own commands and the
// system's real ssh, scp and sftp.
func TestGuestAccess(t *testing.T) {
	for _, tool := range []string{"ssh", "scp", "sftp", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (openssh-client): %v", tool, err)
		}
	}
	d := sharedDaemon(t)
	const vm = "ga"
	d.must(t, "vm", "create", "--name", vm, "--image", "bb", "--memory", "256", "--vcpus", "1")
	defer d.run("vm", "delete", "--force", vm)
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "ssh_config")
	if err := os.WriteFile(cfg, []byte(d.must(t, "vm", "ssh-config", vm)), 0o600); err != nil {
		t.Fatal(err)
	}
	host := vm + ".vm"

	t.Run("vm ssh", func(t *testing.T) {
		out := d.must(t, "vm", "ssh", vm, "--", "uname", "-a")
		if !strings.HasPrefix(out, "Linux "+vm+" ") || strings.TrimSpace(out) == "" {
			t.Fatalf("uname -a in the guest printed %q", out)
		}
		kernel := strings.TrimSpace(d.must(t, "vm", "exec", vm, "--", "uname", "-r"))
		if !strings.Contains(out, " "+kernel+" ") {
			t.Errorf("uname -a %q does not show the guest kernel %q", out, kernel)
		}
		if _, errOut, code := d.run("vm", "ssh", vm, "--", "exit", "7"); code != 7 {
			t.Errorf("vm ssh -- exit 7: exit %d (stderr %q)", code, errOut)
		}
	})

	t.Run("ssh-config with OpenSSH", func(t *testing.T) {
		if out, errOut, code := runOpenSSH(t, cfg, "ssh", host, "true"); code != 0 {
			t.Fatalf("ssh -F cfg %s true: exit %d\n%s%s", host, code, out, errOut)
		}
		if _, errOut, code := runOpenSSH(t, cfg, "ssh", host, "echo out; echo err >&2; exit 3"); code != 3 || strings.TrimSpace(errOut) != "err" {
			t.Errorf("ssh exit code %d (want 3), stderr %q", code, errOut)
		}
		// The block also answers to the bare VM name.
		if out, errOut, code := runOpenSSH(t, cfg, "ssh", vm, "hostname"); code != 0 || strings.TrimSpace(out) != vm {
			t.Errorf("ssh %s hostname: exit %d, %q %q", vm, code, out, errOut)
		}
	})

	t.Run("scp both ways", func(t *testing.T) {
		data := make([]byte, 3<<20+17)
		rand.Read(data)
		src := filepath.Join(tmp, "up.bin")
		os.WriteFile(src, data, 0o644)
		if _, errOut, code := runOpenSSH(t, cfg, "scp", "-q", src, host+":/root/copied.bin"); code != 0 {
			t.Fatalf("scp up: exit %d: %s", code, errOut)
		}
		if got := guestShell(t, d, vm, "wc -c < /root/copied.bin"); strings.TrimSpace(got) != strconv.Itoa(len(data)) {
			t.Fatalf("guest file has %s bytes, want %d", got, len(data))
		}
		back := filepath.Join(tmp, "down.bin")
		if _, errOut, code := runOpenSSH(t, cfg, "scp", "-q", host+":/root/copied.bin", back); code != 0 {
			t.Fatalf("scp down: exit %d: %s", code, errOut)
		}
		if got, _ := os.ReadFile(back); !bytes.Equal(got, data) {
			t.Fatalf("file copied up and back differs (%d bytes, want %d)", len(got), len(data))
		}
	})

	t.Run("sftp lists a folder", func(t *testing.T) {
		guestShell(t, d, vm, "mkdir -p '/root/lsdir/sub dir' && echo a > /root/lsdir/alpha && echo b > '/root/lsdir/beta gamma'")
		batch := filepath.Join(tmp, "sftp.batch")
		os.WriteFile(batch, []byte("cd /root/lsdir\nls -1\n"), 0o644)
		out, errOut, code := runOpenSSH(t, cfg, "sftp", "-b", batch, host)
		if code != 0 {
			t.Fatalf("sftp -b: exit %d: %s", code, errOut)
		}
		for _, want := range []string{"alpha", "beta gamma", "sub dir"} {
			if !strings.Contains(out, "\n"+want+"\n") {
				t.Errorf("sftp ls -1 output lacks %q:\n%s", want, out)
			}
		}
	})

	// Two services in the guest: busybox httpd on loopback only, and a
	// persistent nc on every address.
	guestShell(t, d, vm, `mkdir -p /root/www && echo "hello from the guest" > /root/www/index.html &&
ln -sf /bin/busybox /bin/httpd && ln -sf /bin/busybox /bin/setsid &&
printf '#!/bin/sh\necho hi from nc\n' > /root/hi.sh && chmod +x /root/hi.sh &&
setsid httpd -f -p 127.0.0.1:9000 -h /root/www </dev/null >/dev/null 2>&1 &
setsid nc -ll -p 9002 -e /root/hi.sh </dev/null >/dev/null 2>&1 &
true`)

	t.Run("ssh -L reaches a guest service", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fwd := exec.CommandContext(ctx, "ssh", "-F", cfg, "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N",
			"-L", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:9000", port), host)
		var fwdErr bytes.Buffer
		fwd.Stderr = &fwdErr
		if err := fwd.Start(); err != nil {
			t.Fatal(err)
		}
		defer fwd.Wait()
		defer cancel()
		var body string
		err = retryMinute(func() error {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", port))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			body = string(b)
			return err
		})
		if err != nil || strings.TrimSpace(body) != "hello from the guest" {
			t.Fatalf("through ssh -L: %q, %v (ssh stderr: %s)", body, err, fwdErr.String())
		}
	})

	t.Run("vm ports", func(t *testing.T) {
		var res api.VMPortsResult
		var byPort map[int]api.VMPort
		err := retryMinute(func() error {
			d.mustJSON(t, &res, "vm", "ports", vm)
			byPort = map[int]api.VMPort{}
			for _, p := range res.Ports {
				if p.Proto == "tcp" {
					byPort[p.Port] = p
				}
			}
			if _, ok := byPort[9000]; !ok {
				return fmt.Errorf("port 9000 missing")
			}
			if _, ok := byPort[9002]; !ok {
				return fmt.Errorf("port 9002 missing")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("vm ports: %v: %+v", err, res.Ports)
		}
		lo, all := byPort[9000], byPort[9002]
		if lo.Process != "httpd" || lo.PID <= 0 || lo.BindAddress != "127.0.0.1" || !strings.Contains(lo.Endpoint, "not reachable") {
			t.Errorf("loopback httpd listener: %+v", lo)
		}
		if !strings.Contains(lo.Command, "127.0.0.1:9000") {
			t.Errorf("httpd command line %q", lo.Command)
		}
		if all.Process != "nc" || all.PID <= 0 || strings.Contains(all.Endpoint, "not reachable") || !strings.HasSuffix(all.Endpoint, ":9002") {
			t.Fatalf("nc listener: %+v", all)
		}
		// The endpoint's port is reachable from the host at the guest's address.
		ip := showVM(t, d, vm).GuestIP
		var got []byte
		err = retryMinute(func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "9002"), 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			got, err = io.ReadAll(c)
			return err
		})
		if err != nil || strings.TrimSpace(string(got)) != "hi from nc" {
			t.Errorf("nc at %s:9002 answered %q, %v", ip, got, err)
		}
		table := d.must(t, "vm", "ports", vm)
		for _, col := range []string{"PROTO", "ADDRESS", "PORT", "PID", "PROCESS", "ENDPOINT", "httpd", "nc"} {
			if !strings.Contains(table, col) {
				t.Errorf("ports table lacks %q:\n%s", col, table)
			}
		}
	})

	t.Run("wrong host key refused", func(t *testing.T) {
		kh := filepath.Join(d.dir, "config", "banger", "known_hosts")
		data, err := os.ReadFile(kh)
		if err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(tmp, "other_key")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
		otherPub, _ := os.ReadFile(other + ".pub")
		f := strings.Fields(string(otherPub))
		var lines []string
		tampered := false
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if fields := strings.Fields(l); len(fields) >= 3 && fields[0] == host {
				l, tampered = host+" "+f[0]+" "+f[1], true
			}
			lines = append(lines, l)
		}
		if !tampered {
			t.Fatalf("no known_hosts line for %s in:\n%s", host, data)
		}
		badKH := filepath.Join(tmp, "known_hosts.tampered")
		os.WriteFile(badKH, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
		cfgText, _ := os.ReadFile(cfg)
		badCfg := filepath.Join(tmp, "ssh_config.tampered")
		os.WriteFile(badCfg, bytes.ReplaceAll(cfgText, []byte(kh), []byte(badKH)), 0o600)
		out, errOut, code := runOpenSSH(t, badCfg, "ssh", host, "echo", "should-not-run")
		if code == 0 || strings.Contains(out, "should-not-run") {
			t.Fatalf("ssh with a wrong pinned host key: exit %d, stdout %q", code, out)
		}
		if !strings.Contains(errOut, "REMOTE HOST IDENTIFICATION HAS CHANGED") && !strings.Contains(errOut, "Host key verification failed") {
			t.Errorf("ssh refused for another reason: %s", errOut)
		}
		// The untouched config still works.
		if _, errOut, code := runOpenSSH(t, cfg, "ssh", host, "true"); code != 0 {
			t.Errorf("ssh with the right key after the refusal: exit %d %s", code, errOut)
		}
	})

	t.Run("vm exec", func(t *testing.T) {
		out, errOut, code := d.run("vm", "exec", vm, "--", "no-such-command-xyz", "arg")
		if code != 127 || out != "" || !strings.Contains(errOut, "not found") {
			t.Errorf("exec of a missing command: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		out, errOut, code = d.run("vm", "exec", vm, "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 42")
		if code != 42 || out != "to-stdout\n" || errOut != "to-stderr\n" {
			t.Errorf("exec: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if out := d.must(t, "vm", "exec", vm, "--", "echo", "it's", "a b", "$HOME"); out != "it's a b $HOME\n" {
			t.Errorf("exec arguments not passed verbatim: %q", out)
		}
	})

	t.Run("vm health and ping", func(t *testing.T) {
		// Repeated: the clock check held only by luck before the host set
		// the guest clock at boot.
		for i := 0; i < 5; i++ {
			var h api.VMHealthResult
			d.mustJSON(t, &h, "vm", "health", vm)
			seen := map[string]bool{}
			for _, c := range h.Checks {
				seen[c.Name] = c.OK
				if c.Name == "clock" {
					t.Logf("health %d: %s", i, c.Detail)
				}
				if !c.OK {
					t.Errorf("health check %s failed: %s", c.Name, c.Detail)
				}
			}
			for _, name := range []string{"agent", "root-writable", "work-writable", "clock"} {
				if _, ok := seen[name]; !ok {
					t.Errorf("health lacks check %s: %+v", name, h.Checks)
				}
			}
			if !h.Healthy || t.Failed() {
				t.Fatalf("health: %+v", h)
			}
		}
		if out := d.must(t, "vm", "health", vm); !strings.Contains(out, "clock") || strings.Contains(out, "FAILED") {
			t.Errorf("health table:\n%s", out)
		}
		var p api.VMPingResult
		d.mustJSON(t, &p, "vm", "ping", vm)
		if !p.Alive || p.Name != vm {
			t.Errorf("ping: %+v", p)
		}
	})

	t.Run("stopped VM", func(t *testing.T) {
		d.must(t, "vm", "stop", vm)
		for _, args := range [][]string{
			{"vm", "ssh", vm, "--", "true"},
			{"vm", "exec", vm, "--", "true"},
			{"vm", "ssh-config", vm},
			{"vm", "health", vm},
			{"vm", "ping", vm},
			{"vm", "ports", vm},
		} {
			out, errOut, code := d.run(args...)
			if code == 0 || !strings.Contains(errOut, "vm start") || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
				t.Errorf("banger %s on a stopped VM: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
			}
		}
	})
}
