// Package e2e boots real VMs (QEMU under TCG here) through the real banger
// and bangerd binaries. It needs root (taps, bridges, nftables) and QEMU; the
// Debian kernel and a Debian image are cached in $BANGER_TEST_CACHE.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"banger/internal/testutil"
)

var (
	binDir   string // banger, bangerd, banger-agent built for this run
	shared   *daemon
	netIndex atomic.Int32
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode (these tests boot VMs)")
		return 0
	}
	if os.Getuid() != 0 {
		fmt.Println("e2e: skipped: needs root (bridges, taps, nftables)")
		return 0
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		fmt.Println("e2e: FAIL: qemu-system-x86_64 not installed (run scripts/install-deps.sh)")
		return 1
	}
	dir, err := os.MkdirTemp("", "banger-e2e-bin-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if err := buildBinaries(dir); err != nil {
		fmt.Println("e2e: build:", err)
		return 1
	}
	code := m.Run()
	if shared != nil {
		shared.cleanup()
	}
	if busyboxDir != "" {
		os.RemoveAll(busyboxDir)
	}
	return code
}

func buildBinaries(dir string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	return testutil.BuildBinaries(root, dir, "Version=e2e")
}

// cacheDir holds downloads and built images shared between runs.
func cacheDir() string {
	if d := os.Getenv("BANGER_TEST_CACHE"); d != "" {
		return d
	}
	return "/var/cache/banger-test"
}

// daemon is one bangerd with its own state, socket, bridge and subnet.
type daemon struct {
	dir, socket, state string
	bridge, subnet     string
	extraEnv           []string
	proc               *exec.Cmd
	t                  testing.TB
}

// newDaemon starts a bangerd in a fresh temporary state directory.
func newDaemon(t testing.TB) *daemon { return newDaemonEnv(t) }

// newDaemonEnv is newDaemon with extra environment for bangerd and the CLI.
func newDaemonEnv(t testing.TB, extraEnv ...string) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "banger-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	n := netIndex.Add(1)
	d := &daemon{dir: dir, socket: filepath.Join(dir, "bangerd.sock"), state: filepath.Join(dir, "state"),
		bridge: fmt.Sprintf("bge%d-%d", os.Getpid()%10000, n), subnet: fmt.Sprintf("10.%d.%d.0/24", 20+os.Getpid()%200, n), t: t,
		extraEnv: extraEnv}
	d.start(t)
	return d
}

func (d *daemon) env() []string {
	env := append(os.Environ(), "BANGER_BRIDGE="+d.bridge, "BANGER_SUBNET="+d.subnet,
		"XDG_CONFIG_HOME="+filepath.Join(d.dir, "config"))
	return append(env, d.extraEnv...)
}

// start launches bangerd and waits until it answers.
func (d *daemon) start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(d.dir, "bangerd.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d.proc = exec.Command(filepath.Join(binDir, "bangerd"), "--socket", d.socket, "--state-dir", d.state)
	d.proc.Env = d.env()
	d.proc.Stdout, d.proc.Stderr = log, log
	if err := d.proc.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.proc.Wait(); log.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, code := d.run("ping"); code == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _ := os.ReadFile(filepath.Join(d.dir, "bangerd.out"))
	t.Fatalf("bangerd did not answer:\n%s", out)
}

// stop stops the daemon gracefully (VMs keep running).
func (d *daemon) stop() {
	if d.proc == nil || d.proc.Process == nil {
		return
	}
	d.proc.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() {
		for d.proc.ProcessState == nil {
			time.Sleep(50 * time.Millisecond)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		d.proc.Process.Kill()
	}
}

// kill SIGKILLs the daemon.
func (d *daemon) kill() {
	d.proc.Process.Kill()
	for i := 0; i < 100 && d.proc.ProcessState == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanup deletes every VM, stops the daemon and removes the bridge.
func (d *daemon) cleanup() {
	d.run("vm", "delete", "--all", "--force")
	d.stop()
	exec.Command("ip", "link", "del", d.bridge).Run()
	exec.Command("nft", "delete", "table", "inet", "banger-"+d.bridge).Run()
	exec.Command("nft", "delete", "table", "netdev", "banger-"+d.bridge).Run()
	os.RemoveAll(d.dir)
}

// run runs the banger CLI against this daemon.
func (d *daemon) run(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "banger"), append([]string{"--socket", d.socket}, args...)...)
	cmd.Env = d.env()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		e.WriteString(err.Error())
	}
	return o.String(), e.String(), code
}

// must runs the CLI and fails the test on a non-zero exit.
func (d *daemon) must(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, code := d.run(args...)
	if code != 0 {
		t.Fatalf("banger %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// mustJSON runs the CLI with --json and decodes stdout into v.
func (d *daemon) mustJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out := d.must(t, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("banger %s: bad JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// sharedDaemon is one daemon for the tests that need no special state, with
// the Debian kernel pulled and the busybox image registered.
func sharedDaemon(t *testing.T) *daemon {
	t.Helper()
	if shared != nil {
		return shared
	}
	d := newDaemon(t)
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")
	shared = d
	return d
}

// runStdin runs the CLI with stdin as its standard input.
func (d *daemon) runStdin(stdin string, args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "banger"), append([]string{"--socket", d.socket}, args...)...)
	cmd.Env = d.env()
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		e.WriteString(err.Error())
	}
	return o.String(), e.String(), code
}

// mustStdin is runStdin failing the test on a non-zero exit.
func (d *daemon) mustStdin(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := d.runStdin(stdin, args...)
	if code != 0 {
		t.Fatalf("banger %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}
