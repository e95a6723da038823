package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
)

// sshParityOpenSSH runs the system ssh with the config file cfg and extra
// environment, never prompting.
func sshParityOpenSSH(t *testing.T, cfg string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", append([]string{"-F", cfg, "-o", "BatchMode=yes"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("ssh: %v", err)
	}
	return o.String(), e.String(), 0
}

// sshParityAgent starts a host ssh-agent holding a new key; it returns the
// agent socket and the key's SHA256 fingerprint.
func sshParityAgent(t *testing.T) (sock, fingerprint string) {
	t.Helper()
	dir := t.TempDir()
	sock = filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	if err := retryMinute(func() error { _, err := os.Stat(sock); return err }); err != nil {
		t.Fatalf("ssh-agent socket: %v", err)
	}
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "parity", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	add := exec.Command("ssh-add", "-q", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v %s", err, out)
	}
	out, err := exec.Command("ssh-keygen", "-l", "-f", key+".pub").Output()
	fp := regexp.MustCompile(`SHA256:\S+`).FindString(string(out))
	if err != nil || fp == "" {
		t.Fatalf("fingerprint: %v %q", err, out)
	}
	return sock, fp
}

// sshParityCopySSHAdd copies the host's ssh-add with its libraries and
// loader into the guest folder dir (the busybox image has no ssh-add) and
// returns the command line that runs it there.
func sshParityCopySSHAdd(t *testing.T, cfg, host, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("ssh-add")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	files := []string{bin}
	loader := ""
	for _, f := range regexp.MustCompile(`(/\S+)`).FindAllString(string(out), -1) {
		files = append(files, f)
		if strings.Contains(filepath.Base(f), "ld-linux") {
			loader = filepath.Base(f)
		}
	}
	if loader == "" {
		t.Fatalf("no loader in ldd output:\n%s", out)
	}
	if _, errOut, code := sshParityOpenSSH(t, cfg, nil, host, "mkdir -p "+dir); code != 0 {
		t.Fatalf("mkdir in guest: %s", errOut)
	}
	scp := exec.Command("scp", append(append([]string{"-F", cfg, "-o", "BatchMode=yes", "-q"}, files...), host+":"+dir+"/")...)
	if out, err := scp.CombinedOutput(); err != nil {
		t.Fatalf("scp ssh-add into the guest: %v %s", err, out)
	}
	return fmt.Sprintf("%s/%s --library-path %s %s/ssh-add", dir, loader, dir, dir)
}

// TestSSHParity: in a real VM reached through vm ssh-config, ssh -R gives
// the guest a host service for the session's life, and ssh -A (and
// banger vm ssh -A) give it the host's key agent.
func TestSSHParity(t *testing.T) {
	for _, tool := range []string{"ssh", "scp", "ssh-agent", "ssh-add", "ssh-keygen", "ldd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (openssh-client, libc-bin): %v", tool, err)
		}
	}
	d := newDaemon(t)
	defer d.cleanup()
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")
	const vm = "parity"
	d.must(t, "vm", "create", "--name", vm, "--image", "bb", "--memory", "256", "--vcpus", "1")
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(cfg, []byte(d.must(t, "vm", "ssh-config", vm)), 0o600); err != nil {
		t.Fatal(err)
	}
	host := vm + ".vm"

	t.Run("ssh -R reaches a host server", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello from the host\n")
		})}
		go srv.Serve(ln)
		defer srv.Close()
		const guestPort = 18080
		fwd := fmt.Sprintf("%d:127.0.0.1:%d", guestPort, ln.Addr().(*net.TCPAddr).Port)
		// The forward is set up beside the session: retry the first fetch.
		script := fmt.Sprintf(`i=0; until busybox wget -q -O - http://127.0.0.1:%d/; do i=$((i+1)); [ $i -gt 50 ] && exit 1; sleep 0.2; done`, guestPort)
		out, errOut, code := sshParityOpenSSH(t, cfg, nil, "-o", "ExitOnForwardFailure=yes", "-R", fwd, host, script)
		if code != 0 || out != "hello from the host\n" {
			t.Fatalf("ssh -R %s: exit %d, stdout %q, stderr %q", fwd, code, out, errOut)
		}
		// The agent's listener is gone once the connection has ended.
		err = retryMinute(func() error {
			var res api.VMPortsResult
			d.mustJSON(t, &res, "vm", "ports", vm)
			for _, p := range res.Ports {
				if p.Proto == "tcp" && p.Port == guestPort {
					return fmt.Errorf("guest still listens on %d: %+v", guestPort, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// A wildcard bind is refused: remote forwards stay on the guest's loopback.
		if _, errOut, code := sshParityOpenSSH(t, cfg, nil, "-o", "ExitOnForwardFailure=yes", "-R", "0.0.0.0:"+fwd, host, "sleep 30"); code != 255 {
			t.Fatalf("ssh -R 0.0.0.0:%s: exit %d (stderr %q), want 255", fwd, code, errOut)
		}
	})

	t.Run("ssh -A lists the host key in the guest", func(t *testing.T) {
		sock, fp := sshParityAgent(t)
		sshAdd := sshParityCopySSHAdd(t, cfg, host, "/root/sshadd")
		env := []string{"SSH_AUTH_SOCK=" + sock}
		script := `echo "$SSH_AUTH_SOCK"; stat -c '%a' "$SSH_AUTH_SOCK"; ` + sshAdd + " -l"
		out, errOut, code := sshParityOpenSSH(t, cfg, env, "-A", host, script)
		got := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(got) != 3 || got[1] != "600" || !strings.Contains(got[2], fp) {
			t.Fatalf("ssh -A: exit %d, stdout %q, stderr %q; want the socket, 600 and %s", code, out, errOut, fp)
		}
		if left := guestShell(t, d, vm, "test -e "+got[0]+" && echo present || echo gone"); strings.TrimSpace(left) != "gone" {
			t.Errorf("agent socket %s after the session: %s", got[0], left)
		}
		if out, _, _ := sshParityOpenSSH(t, cfg, env, host, sshAdd+" -l"); strings.Contains(out, fp) {
			t.Errorf("without -A the guest still reaches the agent: %q", out)
		}

		t.Setenv("SSH_AUTH_SOCK", sock)
		out, errOut, code = d.run("vm", "ssh", "-A", vm, "--", sshAdd, "-l")
		if code != 0 || !strings.Contains(out, fp) {
			t.Fatalf("banger vm ssh -A: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
}
