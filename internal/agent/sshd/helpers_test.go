package sshd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testServer is a Serve running on a loopback port for one test.
type testServer struct {
	port       int
	home       string // HOME and cwd of sessions
	clientKey  string // private key file for ssh -i
	knownHosts string // known_hosts pinning the server key
	signer     ssh.Signer
	hostPub    ssh.PublicKey
	powered    chan struct{}
	stop       func() // cancels Serve and checks it returns; also run at cleanup
}

// newKeyPair returns an ed25519 key as PEM and signer.
func newKeyPair(t *testing.T) ([]byte, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(block)
	signer, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return pemBytes, signer
}

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// startServer serves on 127.0.0.1 until the test ends and checks that
// Serve returns after its context is cancelled.
func startServer(t *testing.T, adjust func(*sysPaths)) *testServer {
	t.Helper()
	return startServerConfig(t, nil, adjust)
}

// startServerConfig is startServer with the Config adjusted too.
func startServerConfig(t *testing.T, adjustConfig func(*Config), adjust func(*sysPaths)) *testServer {
	t.Helper()
	dir := t.TempDir()
	hostPEM, hostSigner := newKeyPair(t)
	clientPEM, clientSigner := newKeyPair(t)
	ts := &testServer{
		home:       filepath.Join(dir, "home"),
		clientKey:  filepath.Join(dir, "id_ed25519"),
		knownHosts: filepath.Join(dir, "known_hosts"),
		signer:     clientSigner,
		hostPub:    hostSigner.PublicKey(),
		powered:    make(chan struct{}, 1),
	}
	if err := os.Mkdir(ts.home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ts.clientKey, clientPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.port = ln.Addr().(*net.TCPAddr).Port
	known := fmt.Sprintf("[127.0.0.1]:%d %s\n", ts.port, authorizedLine(ts.hostPub))
	if err := os.WriteFile(ts.knownHosts, []byte(known), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		HostKey:        hostPEM,
		AuthorizedKeys: []string{"# comment", "not a key", authorizedLine(clientSigner.PublicKey()) + " test@host"},
		Env:            []string{"BANGER_TEST_ENV=from-config"},
		Poweroff:       func() { ts.powered <- struct{}{} },
		Disks:          DiskPaths{Root: dir, Work: ts.home},
	}
	if adjustConfig != nil {
		adjustConfig(&cfg)
	}
	sys := defaultSysPaths()
	sys.home = ts.home
	if adjust != nil {
		adjust(&sys)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, ln, cfg, log, sys) }()
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("Serve returned %v after cancel", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Serve did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// testWriter sends server logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// sshArgs are the OpenSSH options to reach ts with the test's key.
func (ts *testServer) sshArgs(portFlag string) []string {
	return []string{
		"-F", "/dev/null",
		portFlag, strconv.Itoa(ts.port),
		"-i", ts.clientKey,
		"-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + ts.knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=20",
	}
}

// requireTool skips the test when an OpenSSH client tool is missing.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed (apt-get install openssh-client): %v", name, err)
	}
}

// result is a finished client command.
type result struct {
	stdout, stderr string
	code           int
}

// runTool runs an OpenSSH tool with a bound on its run time.
func runTool(t *testing.T, stdin string, name string, args ...string) result {
	t.Helper()
	requireTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return res
}

// ssh runs the OpenSSH client against ts with extra options and a command.
func (ts *testServer) ssh(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	all := append(ts.sshArgs("-p"), args...)
	return runTool(t, stdin, "ssh", all...)
}

// goClient connects with x/crypto's client.
func (ts *testServer) goClient(t *testing.T) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ts.port), &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(ts.signer)},
		HostKeyCallback: ssh.FixedHostKey(ts.hostPub),
		Timeout:         20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
