package sshd

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// hostAgent runs a real ssh-agent holding one new key for the test and
// returns its socket and the key's signer.
func hostAgent(t *testing.T) (sock string, key ssh.Signer) {
	t.Helper()
	requireTool(t, "ssh-agent")
	requireTool(t, "ssh-add")
	dir := t.TempDir()
	sock = filepath.Join(dir, "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "ssh-agent socket", func() error { _, err := os.Stat(sock); return err })
	pemBytes, signer := newKeyPair(t)
	keyFile := filepath.Join(dir, "agent_key")
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if res := runToolEnv(t, []string{"SSH_AUTH_SOCK=" + sock}, "ssh-add", "-q", keyFile); res.code != 0 {
		t.Fatalf("ssh-add: %+v", res)
	}
	return sock, signer
}

// TestOpenSSHAgentForwarding: with ssh -A the session's SSH_AUTH_SOCK is a
// 0600 socket in a fresh 0700 folder, ssh-add -l through it lists the
// client's key, and the socket and folder are gone when the session ends.
func TestOpenSSHAgentForwarding(t *testing.T) {
	ts := startServer(t, nil)
	sock, key := hostAgent(t)
	env := []string{"SSH_AUTH_SOCK=" + sock}
	script := `echo "$SSH_AUTH_SOCK"; stat -c '%a %F' "$SSH_AUTH_SOCK" "$(dirname "$SSH_AUTH_SOCK")"; ssh-add -l`
	res := runToolEnv(t, env, "ssh", append(ts.sshArgs("-p"), "-A", target, script)...)
	if res.code != 0 {
		t.Fatalf("ssh -A: %+v", res)
	}
	out := lines(res.stdout)
	if len(out) != 4 {
		t.Fatalf("ssh -A printed %q", res.stdout)
	}
	path := out[0]
	if out[1] != "600 socket" || out[2] != "700 directory" {
		t.Errorf("socket and folder: %q, %q; want 600 socket, 700 directory", out[1], out[2])
	}
	if !strings.Contains(out[3], ssh.FingerprintSHA256(key.PublicKey())) {
		t.Errorf("ssh-add -l in the session printed %q, want the key %s", out[3], ssh.FingerprintSHA256(key.PublicKey()))
	}
	// Removed before the session's exit status reached the client.
	if err := gone(path); err != nil {
		t.Error(err)
	}
	if err := gone(filepath.Dir(path)); err != nil {
		t.Error(err)
	}

	// Without -A there is no socket.
	res = runToolEnv(t, env, "ssh", append(ts.sshArgs("-p"), target, `echo "${SSH_AUTH_SOCK-unset}"`)...)
	if res.stdout != "unset\n" {
		t.Errorf("without -A: %+v", res)
	}
}

// TestOpenSSHAgentForwardingGit: git in the session clones over SSH from a
// second server that authorizes only the key in the client's agent.
func TestOpenSSHAgentForwardingGit(t *testing.T) {
	requireTool(t, "git")
	ts := startServer(t, nil)
	other := startServer(t, nil)
	sock, key := hostAgent(t)
	other.authorizeKey(t, authorizedLine(key.PublicKey()))

	dir := t.TempDir()
	work, bare := filepath.Join(dir, "work"), filepath.Join(dir, "repo.git")
	for _, args := range [][]string{
		{"init", "-q", work},
		{"-C", work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "through the forwarded agent"},
		{"clone", "-q", "--bare", work, bare},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	gitSSH := fmt.Sprintf("ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null", other.knownHosts)
	clone := func(dest string) string {
		return fmt.Sprintf("GIT_SSH_COMMAND='%s' git clone -q ssh://root@127.0.0.1:%d%s %s && git -C %s log --format=%%s",
			gitSSH, other.port, bare, dest, dest)
	}
	env := []string{"SSH_AUTH_SOCK=" + sock}
	res := runToolEnv(t, env, "ssh", append(ts.sshArgs("-p"), "-A", target, clone(filepath.Join(dir, "with-agent")))...)
	if res.code != 0 || res.stdout != "through the forwarded agent\n" {
		t.Fatalf("git clone through the forwarded agent: %+v", res)
	}
	res = runToolEnv(t, env, "ssh", append(ts.sshArgs("-p"), target, clone(filepath.Join(dir, "without-agent")))...)
	if res.code == 0 {
		t.Fatalf("git clone without -A succeeded: %+v", res)
	}
}

// TestAgentSocketRemovedOnDisconnect: a client that drops the connection
// mid-session leaves no agent socket behind.
func TestAgentSocketRemovedOnDisconnect(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.goClient(t)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.RequestAgentForwarding(sess); err != nil {
		t.Fatal(err)
	}
	out, _ := sess.StdoutPipe()
	if err := sess.Start(`echo "$SSH_AUTH_SOCK"; exec sleep 100`); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	path := strings.TrimSpace(line)
	if err != nil || path == "" {
		t.Fatalf("SSH_AUTH_SOCK %q: %v", line, err)
	}
	socketMode(t, path)
	// A second request on the same session is refused.
	if ok, err := sess.SendRequest(reqAuthAgent, true, nil); ok || err != nil {
		t.Errorf("second auth-agent-req: ok=%v err=%v", ok, err)
	}
	c.Close()
	waitFor(t, "agent socket removed after disconnect", func() error { return gone(filepath.Dir(path)) })
}
