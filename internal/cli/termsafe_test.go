package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/model"
	"banger/internal/server"
)

// evil is what a hostile guest writes: it would set the terminal's title,
// clear the screen and colour what follows.
const evil = "\x1b]0;owned\x07\x1b[2J\x1b[31mnginx"

// evilEscaped is evil as the CLI must show it.
const evilEscaped = `\x1b]0;owned\x07\x1b[2J\x1b[31mnginx`

// hostileVMs answers with guest-chosen strings everywhere they can reach.
type hostileVMs struct {
	server.VMService
	server.GuestService
	log string
}

func (h hostileVMs) Ports(_ context.Context, ref string) (api.VMPortsResult, error) {
	return api.VMPortsResult{Name: ref, Ports: []api.VMPort{{Proto: "tcp", BindAddress: "0.0.0.0", Port: 80, PID: 7, Process: evil}}}, nil
}
func (h hostileVMs) Health(_ context.Context, ref string) (api.VMHealthResult, error) {
	return api.VMHealthResult{Name: ref, Healthy: true, Checks: []api.VMHealthCheck{{Name: "agent", OK: true, Detail: evil}}}, nil
}
func (h hostileVMs) Show(_ context.Context, ref string) (model.VMRecord, error) {
	return model.VMRecord{ID: "id1", Name: ref, State: model.VMStopped, StopReason: "killed: " + evil, LastError: "boot failed\nconsole:\n" + evil}, nil
}
func (h hostileVMs) CreateStatus(_ context.Context, id string) (api.VMCreateOperation, error) {
	return api.VMCreateOperation{ID: id, VMName: "v1", Stage: "agent", Done: true, Error: "guest agent: " + evil}, nil
}
func (h hostileVMs) WaitCreateStatus(ctx context.Context, id, _ string) (api.VMCreateOperation, error) {
	return h.CreateStatus(ctx, id)
}
func (h hostileVMs) Stats(context.Context, string) (model.VMRecord, model.VMStats, error) {
	return model.VMRecord{}, model.VMStats{}, api.Errorf(api.ErrUnavailable, "agent: %s", evil)
}
func (h hostileVMs) Logs(context.Context, string) (string, error) { return h.log, nil }

func hostileDaemon(t *testing.T) (sock, logPath string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	logPath = filepath.Join(dir, "serial.log")
	os.WriteFile(logPath, []byte("Booting\r\n"+evil+"\r\nlogin ok\n"), 0o600)
	sock = filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: server.New(server.Services{VMs: hostileVMs{log: logPath}, Guests: hostileVMs{log: logPath}}, slog.New(slog.DiscardHandler))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock, logPath
}

func runTTY(tty bool, args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = mainWith(args, strings.NewReader(""), &o, &e, func(io.Writer) bool { return tty })
	return code, o.String(), e.String()
}

// TestGuestStringsEscaped: guest-chosen names and messages reach the
// terminal escaped in text output and in error lines, whether or not the
// output is a terminal; --json keeps them as they are.
func TestGuestStringsEscaped(t *testing.T) {
	sock, _ := hostileDaemon(t)
	for _, args := range [][]string{{"vm", "ports", "v1"}, {"vm", "health", "v1"}, {"vm", "show", "v1"}, {"vm", "create-status", "op1"}, {"vm", "stats", "v1"}} {
		for _, tty := range []bool{true, false} {
			_, stdout, stderr := runTTY(tty, append([]string{"--socket", sock}, args...)...)
			out := stdout + stderr
			if strings.ContainsAny(out, "\x1b\x07") {
				t.Errorf("%v (tty %v): raw escape reached the output: %q", args, tty, out)
			}
			if !strings.Contains(out, evilEscaped) {
				t.Errorf("%v (tty %v): escaped text missing: %q", args, tty, out)
			}
		}
	}
	// Multi-line values keep their lines.
	if _, stdout, _ := runTTY(true, "--socket", sock, "vm", "show", "v1"); !strings.Contains(stdout, "boot failed\nconsole:\n"+evilEscaped) {
		t.Errorf("last error lost its lines: %q", stdout)
	}
	code, stdout, _ := runTTY(true, "--socket", sock, "--json", "vm", "ports", "v1")
	var res api.VMPortsResult
	if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil || len(res.Ports) != 1 || res.Ports[0].Process != evil {
		t.Fatalf("--json ports: code %d err %v %+v", code, err, res)
	}
}

// followLogs runs 'vm logs -f' until the log has been printed.
func followLogs(t *testing.T, sock string, tty bool, extra ...string) string {
	t.Helper()
	var o bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &o, stderr: io.Discard, isTTY: func(io.Writer) bool { return tty }}
	root := newRoot(a)
	root.SetArgs(append([]string{"--socket", sock, "vm", "logs", "-f", "v1"}, extra...))
	// followFile prints what the log holds, then waits for more until the
	// context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatal(err)
	}
	return o.String()
}

func TestLogsFollowEscapedOnTerminal(t *testing.T) {
	sock, logPath := hostileDaemon(t)
	raw, _ := os.ReadFile(logPath)
	if got := followLogs(t, sock, true); got != "Booting\r\n"+evilEscaped+"\r\nlogin ok\n" {
		t.Errorf("logs -f on a terminal: %q", got)
	}
	if got := followLogs(t, sock, false); got != string(raw) {
		t.Errorf("logs -f to a pipe: %q, want the raw bytes", got)
	}
	if got := followLogs(t, sock, true, "--raw"); got != string(raw) {
		t.Errorf("logs -f --raw on a terminal: %q, want the raw bytes", got)
	}
}
