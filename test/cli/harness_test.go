// Package clitest runs the real banger and bangerd binaries, built once per
// run, in a temporary HOME: daemon start/status/stop, ping, version, --json,
// exit codes, the second-daemon refusal and the socket's permissions. No VM
// is booted. As root, bangerd makes a host bridge: every daemon here gets its
// own (BANGER_BRIDGE, BANGER_SUBNET), removed with its nftables table after
// the test.
package clitest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"banger/internal/testutil"
)

// Stamped into the test binaries, so that tests can tell them from a plain build.
const (
	stampVersion = "v0.0.0-clitest"
	stampCommit  = "c1i7e57"
	stampBuiltAt = "2025-01-02T03:04:05Z"
)

var (
	binDir string
	envSeq atomic.Int32
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		fmt.Println("test/cli: FAIL: bangerd needs qemu-system-x86_64 (run scripts/install-deps.sh)")
		return 1
	}
	dir, err := os.MkdirTemp("", "banger-cli-bin-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if err := build(dir); err != nil {
		fmt.Println("test/cli: build:", err)
		return 1
	}
	return m.Run()
}

// build compiles the three binaries with a stamped version.
func build(dir string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	return testutil.BuildBinaries(root, dir, "Version="+stampVersion, "Commit="+stampCommit, "BuiltAt="+stampBuiltAt)
}

// env is one temporary home with its own socket, state, bridge and subnet.
type env struct {
	dir, home, state, socket string
	bridge, subnet           string
	pids                     []int // daemons to make sure are gone at cleanup
}

// newEnv makes a temporary home; t.Cleanup stops its daemon and removes the
// bridge, the nftables table and the folder.
func newEnv(t *testing.T) *env {
	t.Helper()
	// Short: a Unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "bgc")
	if err != nil {
		t.Fatal(err)
	}
	n := envSeq.Add(1)
	e := &env{dir: dir, home: filepath.Join(dir, "home"), state: filepath.Join(dir, "state"),
		socket: filepath.Join(dir, "run", "bangerd.sock")}
	e.bridge, e.subnet = netFor(int(n))
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cleanup(t) })
	return e
}

// netFor names a bridge and subnet unique to this test process: 10.250.x.0/24
// stays clear of the e2e harness (10.200-249.x.0/24).
func netFor(n int) (bridge, subnet string) {
	pid := os.Getpid()
	return fmt.Sprintf("bgc%d-%d", pid%10000, n), fmt.Sprintf("10.250.%d.0/24", (pid%50)*5+n%5)
}

// environ is the environment of every command: the temporary home, this
// env's bridge and subnet, and no inherited banger settings.
func (e *env) environ(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "BANGER_SOCKET", "BANGER_HOME",
			"BANGER_BRIDGE", "BANGER_SUBNET":
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "HOME="+e.home, "XDG_CONFIG_HOME="+filepath.Join(e.home, ".config"),
		"BANGER_BRIDGE="+e.bridge, "BANGER_SUBNET="+e.subnet)
	return append(out, extra...)
}

// result is one finished command.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// exec runs one of the built binaries. The timeout only guards against a
// hung binary; no test asserts on durations.
func (e *env) exec(t *testing.T, extraEnv []string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, bin), args...)
	cmd.Env = e.environ(extraEnv...)
	cmd.Dir = e.home
	var o, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &errb
	err := cmd.Run()
	r := result{stdout: o.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return r
}

// banger runs the CLI against this env's socket.
func (e *env) banger(t *testing.T, args ...string) result {
	t.Helper()
	return e.exec(t, nil, "banger", append([]string{"--socket", e.socket}, args...)...)
}

// must runs the CLI and fails the test unless it exits 0.
func (e *env) must(t *testing.T, args ...string) result {
	t.Helper()
	r := e.banger(t, args...)
	if r.code != 0 {
		t.Fatalf("banger %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// cleanup stops whatever daemon this env started and removes its network
// pieces (they exist only when bangerd ran as root).
func (e *env) cleanup(t *testing.T) {
	if r := e.banger(t, "daemon", "stop"); r.code != 0 && r.code != 3 {
		t.Logf("cleanup: daemon stop: %s", r)
	}
	for _, pid := range e.pids {
		if syscall.Kill(pid, 0) == nil {
			t.Logf("cleanup: bangerd pid %d still running: killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	removeNetwork(e.bridge)
	if t.Failed() {
		if data, err := os.ReadFile(filepath.Join(e.state, "logs", "bangerd.log")); err == nil {
			t.Logf("bangerd.log:\n%s", data)
		}
	}
	os.RemoveAll(e.dir)
}

// removeNetwork deletes a bridge and the nftables tables named after it.
func removeNetwork(bridge string) {
	if os.Geteuid() != 0 {
		return
	}
	exec.Command("ip", "link", "del", bridge).Run()
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line) // "table inet NAME", "table netdev NAME"
		if len(f) == 3 && (f[1] == "inet" || f[1] == "netdev") && strings.HasPrefix(f[2], "banger") && strings.HasSuffix(f[2], bridge) {
			exec.Command("nft", "delete", "table", f[1], f[2]).Run()
		}
	}
}
