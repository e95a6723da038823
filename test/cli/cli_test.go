package clitest

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// startDaemon runs `banger daemon start` and returns the daemon's pid.
func (e *env) startDaemon(t *testing.T) int {
	t.Helper()
	r := e.must(t, "--json", "daemon", "start", "--state-dir", e.state)
	var ping struct {
		Status string `json:"status"`
		PID    int    `json:"pid"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ping); err != nil || ping.Status != "ok" || ping.PID <= 0 {
		t.Fatalf("daemon start: bad JSON (%v): %s", err, r)
	}
	e.pids = append(e.pids, ping.PID)
	if !strings.Contains(r.stderr, "bangerd started (pid "+strconv.Itoa(ping.PID)+")") {
		t.Errorf("daemon start said: %q", r.stderr)
	}
	return ping.PID
}

// rawPing GETs /v1/ping over the socket, as curl --unix-socket does.
func rawPing(t *testing.T, socket string) map[string]any {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := hc.Get("http://banger/v1/ping")
	if err != nil {
		t.Fatalf("GET /v1/ping: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/ping: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET /v1/ping: %v: %s", err, body)
	}
	return m
}

func decodeMap(t *testing.T, what, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s: not a JSON object (%v): %s", what, err, s)
	}
	return m
}

// oneErrorLine checks a failed command printed nothing on stdout and one
// "banger: ..." line on stderr, plus the usage or start hint where expected.
func oneErrorLine(t *testing.T, r result, hint string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if r.stdout != "" || !strings.HasPrefix(lines[0], "banger: ") {
		t.Errorf("want one error line on stderr, nothing on stdout: %s", r)
	}
	want := 1
	if hint != "" {
		want = 2
		if !strings.Contains(lines[len(lines)-1], hint) {
			t.Errorf("last stderr line %q lacks %q", lines[len(lines)-1], hint)
		}
	}
	if len(lines) != want {
		t.Errorf("stderr has %d lines, want %d: %q", len(lines), want, r.stderr)
	}
}

func TestDaemonLifecycle(t *testing.T) {
	e := newEnv(t)

	// Before start: unreachable, exit 3 with a hint.
	r := e.banger(t, "daemon", "status")
	if r.code != 3 {
		t.Fatalf("status before start: %s", r)
	}
	oneErrorLine(t, r, "hint: start the daemon with 'banger daemon start'")
	if !strings.Contains(r.stderr, e.socket) {
		t.Errorf("unreachable error does not name the socket: %q", r.stderr)
	}

	pid := e.startDaemon(t)

	r = e.must(t, "daemon", "status")
	if !strings.Contains(r.stdout, "running: pid "+strconv.Itoa(pid)) || !strings.Contains(r.stdout, stampVersion) {
		t.Errorf("status: %s", r)
	}
	r = e.must(t, "ping")
	if want := "ok: bangerd " + stampVersion + " (pid " + strconv.Itoa(pid) + ") on " + e.socket + "\n"; r.stdout != want {
		t.Errorf("ping printed %q, want %q", r.stdout, want)
	}

	// banger --json ping prints what the API answers.
	raw := rawPing(t, e.socket)
	// The accelerator depends on the host: it is one of two, with a reason.
	if a := raw["accel"]; (a != "tcg" && a != "kvm") || raw["accel_reason"] == "" || raw["accel_reason"] == nil {
		t.Errorf("GET /v1/ping accel = %v (%v), want tcg or kvm with a reason", a, raw["accel_reason"])
	}
	if !strings.Contains(e.must(t, "daemon", "status").stdout, "accelerator: ") {
		t.Errorf("daemon status does not say which accelerator")
	}
	withoutAccel := maps.Clone(raw)
	delete(withoutAccel, "accel")
	delete(withoutAccel, "accel_reason")
	want := map[string]any{"status": "ok", "pid": float64(pid), "version": stampVersion, "commit": stampCommit, "built_at": stampBuiltAt}
	if !reflect.DeepEqual(withoutAccel, want) {
		t.Errorf("GET /v1/ping = %v, want %v plus accel and accel_reason", raw, want)
	}
	if got := decodeMap(t, "--json ping", e.must(t, "--json", "ping").stdout); !reflect.DeepEqual(got, raw) {
		t.Errorf("--json ping = %v, API = %v", got, raw)
	}
	if _, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command("curl", "-sS", "--unix-socket", e.socket, "http://banger/v1/ping").Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		if got := decodeMap(t, "curl", string(out)); !reflect.DeepEqual(got, raw) {
			t.Errorf("curl = %v, API = %v", got, raw)
		}
	}

	// BANGER_SOCKET is the default --socket.
	if r := e.exec(t, []string{"BANGER_SOCKET=" + e.socket}, "banger", "ping"); r.code != 0 {
		t.Errorf("ping via BANGER_SOCKET: %s", r)
	}

	// A second start finds it running and starts nothing.
	r = e.must(t, "daemon", "start", "--state-dir", e.state)
	if !strings.Contains(r.stderr, "already running (pid "+strconv.Itoa(pid)+")") {
		t.Errorf("second start: %s", r)
	}

	t.Run("version", func(t *testing.T) { checkVersion(t, e) })
	t.Run("exit codes", func(t *testing.T) { checkExitCodes(t, e) })
	t.Run("socket mode", func(t *testing.T) { checkSocketMode(t, e.socket) })
	t.Run("second bangerd", func(t *testing.T) { checkSecondDaemon(t, e) })

	r = e.must(t, "daemon", "stop")
	if !strings.Contains(r.stderr, "bangerd (pid "+strconv.Itoa(pid)+") stopped") {
		t.Errorf("stop said: %s", r)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("bangerd pid %d still alive after daemon stop", pid)
	}
	if _, err := os.Lstat(e.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind after stop: %v", err)
	}
	if r := e.banger(t, "ping"); r.code != 3 {
		t.Errorf("ping after stop: %s", r)
	}
	if r := e.banger(t, "daemon", "stop"); r.code != 3 {
		t.Errorf("stop when stopped: %s", r)
	}
	log, err := os.ReadFile(filepath.Join(e.state, "logs", "bangerd.log"))
	if err != nil || !strings.Contains(string(log), "running VMs keep running") || !strings.Contains(string(log), "bangerd stopped") {
		t.Errorf("daemon log does not record a graceful stop (%v):\n%s", err, log)
	}

	// It starts again on the same state (the lock died with the process).
	e.startDaemon(t)
	e.must(t, "daemon", "stop")
}

func checkVersion(t *testing.T, e *env) {
	r := e.must(t, "version")
	for _, want := range []string{"client: " + stampVersion + " " + stampCommit, "daemon: " + stampVersion + " " + stampCommit} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("version lacks %q: %s", want, r)
		}
	}
	var v struct {
		Client, Daemon struct{ Version, Commit, BuiltAt string }
	}
	if err := json.Unmarshal([]byte(e.must(t, "--json", "version").stdout), &v); err != nil {
		t.Fatal(err)
	}
	if v.Client.Version != stampVersion || v.Daemon.Version != stampVersion || v.Daemon.Commit != stampCommit {
		t.Errorf("--json version: %+v", v)
	}
	// Without a daemon, version still prints the client and says why not the daemon.
	r = e.exec(t, nil, "banger", "--socket", filepath.Join(e.dir, "nope.sock"), "version")
	if r.code != 0 || !strings.Contains(r.stdout, "client: "+stampVersion) || !strings.Contains(r.stdout, "daemon: unreachable") {
		t.Errorf("version without daemon: %s", r)
	}
	if r := e.exec(t, nil, "bangerd", "--version"); r.code != 0 || !strings.Contains(r.stdout, stampVersion) {
		t.Errorf("bangerd --version: %s", r)
	}
}

func checkExitCodes(t *testing.T, e *env) {
	failed := [][]string{{"kernel", "show", "nope"}, {"image", "show", "nope"}, {"vm", "show", "nope"}, {"--json", "kernel", "show", "nope"}}
	for _, args := range failed {
		r := e.banger(t, args...)
		if r.code != 1 {
			t.Errorf("%v: %s (want exit 1)", args, r)
		}
		oneErrorLine(t, r, "")
		if !strings.Contains(r.stderr, "nope") {
			t.Errorf("%v: error does not name what was missing: %q", args, r.stderr)
		}
	}
	usage := [][]string{{"--bogus", "ping"}, {"ping", "extra"}, {"kernel", "show"}, {"kernel", "show", "a", "b"},
		{"frobnicate"}, {"daemon", "stop", "now"}, {"vm", "delete"}, {"daemon", "start", "--timeout", "x"}}
	for _, args := range usage {
		r := e.banger(t, args...)
		if r.code != 2 {
			t.Errorf("%v: %s (want exit 2)", args, r)
		}
		oneErrorLine(t, r, "banger --help")
	}
	r := e.exec(t, nil, "banger", "--socket", filepath.Join(e.dir, "nope.sock"), "vm", "list")
	if r.code != 3 {
		t.Errorf("vm list without daemon: %s (want exit 3)", r)
	}
	oneErrorLine(t, r, "hint: start the daemon")

	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := e.must(t, "completion", sh)
		if !strings.Contains(r.stdout, "banger") || len(r.stdout) < 500 {
			t.Errorf("completion %s printed %d bytes", sh, len(r.stdout))
		}
	}
	bash := e.must(t, "completion", "bash").stdout
	if !strings.Contains(bash, "complete -o default -F __start_banger banger") {
		t.Errorf("completion bash does not register the banger completion function")
	}
}

func checkSocketMode(t *testing.T, socket string) {
	fi, err := os.Lstat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("%s is not a socket: %v", socket, fi.Mode())
	}
	st := fi.Sys().(*syscall.Stat_t)
	perm := fi.Mode().Perm()
	if perm&0o007 != 0 {
		t.Errorf("socket mode %v is open to others", perm)
	}
	if int(st.Uid) != os.Geteuid() {
		t.Errorf("socket owned by uid %d, want %d", st.Uid, os.Geteuid())
	}
	if g, err := user.LookupGroup("banger"); err == nil {
		if perm != 0o660 || strconv.Itoa(int(st.Gid)) != g.Gid {
			t.Errorf("group banger exists: socket mode %v gid %d, want 0660 gid %s", perm, st.Gid, g.Gid)
		}
	} else if perm != 0o600 {
		t.Errorf("no group banger: socket mode %v, want 0600", perm)
	}
}

func checkSecondDaemon(t *testing.T, e *env) {
	// Same state, other socket: refused by the lock, before touching anything.
	other := filepath.Join(e.dir, "run", "second.sock")
	r := e.exec(t, nil, "bangerd", "--state-dir", e.state, "--socket", other)
	if r.code == 0 {
		t.Fatalf("second bangerd on the same state exited 0: %s", r)
	}
	if !strings.Contains(r.stderr, "already using this state directory") || !strings.Contains(r.stderr, "bangerd.lock") {
		t.Errorf("second bangerd: unclear message: %q", r.stderr)
	}
	if _, err := os.Lstat(other); !os.IsNotExist(err) {
		t.Errorf("refused bangerd left a socket at %s", other)
	}
	// The running daemon is unharmed.
	e.must(t, "ping")

	// Other state, same socket: refused too. Give it its own bridge so it
	// cannot disturb the running daemon's network.
	bridge, subnet := netFor(int(envSeq.Add(1)))
	defer removeNetwork(bridge)
	r = e.exec(t, []string{"BANGER_BRIDGE=" + bridge, "BANGER_SUBNET=" + subnet}, "bangerd",
		"--state-dir", filepath.Join(e.dir, "state2"), "--socket", e.socket)
	if r.code == 0 || !strings.Contains(r.stderr, "already listening on "+e.socket) {
		t.Errorf("bangerd on a busy socket: %s", r)
	}
	if os.Geteuid() == 0 {
		if err := exec.Command("ip", "link", "show", bridge).Run(); err == nil {
			t.Errorf("refused bangerd made its bridge %s (it must stop before touching the network)", bridge)
		}
	}
	e.must(t, "ping")
}
