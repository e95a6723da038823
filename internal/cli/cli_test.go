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

	"banger/internal/api"
	"banger/internal/model"
	"banger/internal/server"

	"github.com/spf13/cobra"
)

// walk calls fn for cmd and every command below it.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		walk(c, fn)
	}
}

// tree is the full command tree, with cobra's help and completion commands.
func tree() *cobra.Command {
	root := newRoot(&app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return root
}

func TestEveryCommandHasUseAndShortHelp(t *testing.T) {
	n := 0
	walk(tree(), func(c *cobra.Command) {
		n++
		path := c.CommandPath()
		if c.Use == "" || strings.Fields(c.Use)[0] != c.Name() {
			t.Errorf("%s: Use %q does not start with the command name", path, c.Use)
		}
		if strings.TrimSpace(c.Short) == "" {
			t.Errorf("%s: no Short help", path)
		}
		if strings.Contains(c.Short, "\n") {
			t.Errorf("%s: Short help spans lines", path)
		}
		if c.Runnable() && c.Args == nil && !argsCheckedInRun[path] && c.Parent() != nil && c.Parent().Name() != "completion" && c.Name() != "help" {
			t.Errorf("%s: no Args validation (a wrong argument count must be a usage error)", path)
		}
		if c.Flag("json") == nil || c.Flag("socket") == nil {
			t.Errorf("%s: --json or --socket is not available", path)
		}
	})
	if n < 40 {
		t.Errorf("only %d commands in the tree", n)
	}
}

// argsCheckedInRun lists commands that check their arguments in RunE
// (TestExitCodes covers them).
var argsCheckedInRun = map[string]bool{"banger vm delete": true}

// readVerbs are the command names that only read state: every one of them
// must print JSON with --json (TestJSONOnReadCommands runs them all).
var readVerbs = map[string]bool{"list": true, "show": true, "catalog": true, "status": true, "stats": true,
	"health": true, "ports": true, "ping": true, "logs": true, "version": true, "create-status": true}

// readCommands runs every read command against the fake daemon.
var readCommands = [][]string{
	{"ping"}, {"version"}, {"daemon", "status"},
	{"kernel", "catalog"}, {"kernel", "list"}, {"kernel", "show", "k1"},
	{"image", "list"}, {"image", "show", "i1"},
	{"vm", "list"}, {"vm", "show", "v1"}, {"vm", "stats", "v1"}, {"vm", "logs", "v1"},
	{"vm", "health", "v1"}, {"vm", "ping", "v1"}, {"vm", "ports", "v1"}, {"vm", "create-status", "op1"},
}

func TestReadCommandsAreAllCovered(t *testing.T) {
	covered := map[string]bool{}
	for _, args := range readCommands {
		covered[strings.Join(args, " ")] = true
	}
	walk(tree(), func(c *cobra.Command) {
		if !readVerbs[c.Name()] || !c.Runnable() {
			return
		}
		p := strings.TrimPrefix(c.CommandPath(), "banger ")
		found := false
		for k := range covered {
			if k == p || strings.HasPrefix(k, p+" ") {
				found = true
			}
		}
		if !found {
			t.Errorf("read command %q is not in readCommands", p)
		}
	})
}

func TestJSONOnReadCommands(t *testing.T) {
	sock := fakeDaemon(t, nil)
	for _, args := range readCommands {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			code, stdout, stderr := run(append([]string{"--socket", sock, "--json"}, args...)...)
			if code != ExitOK {
				t.Fatalf("exit %d, stderr %s", code, stderr)
			}
			var v any
			dec := json.NewDecoder(strings.NewReader(stdout))
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
			}
			if dec.More() {
				t.Errorf("stdout holds more than one JSON value:\n%s", stdout)
			}
			if _, ok := v.(map[string]any); !ok {
				if _, ok := v.([]any); !ok {
					t.Errorf("stdout is not an object or array: %s", stdout)
				}
			}
			if stderr != "" {
				t.Errorf("stderr not empty: %s", stderr)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	sock := fakeDaemon(t, api.Errorf(api.ErrNotFound, "kernel nope not found"))
	gone := filepath.Join(filepath.Dir(sock), "gone.sock")
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--socket", sock, "ping"}, ExitOK, ""},
		{[]string{"--socket", sock, "kernel", "show", "nope"}, ExitFailed, "banger: kernel nope not found\n"},
		{[]string{"--socket", sock, "--bogus", "ping"}, ExitUsage, "unknown flag: --bogus"},
		{[]string{"--socket", sock, "kernel", "show"}, ExitUsage, "takes a"},
		{[]string{"--socket", sock, "kernel", "show", "a", "b"}, ExitUsage, "got 2 arguments"},
		{[]string{"--socket", sock, "frobnicate"}, ExitUsage, "unknown command"},
		{[]string{"--socket", sock, "vm", "delete"}, ExitUsage, "name at least one VM"},
		{[]string{"--socket", gone, "ping"}, ExitUnreachable, "hint: start the daemon"},
		{[]string{"--socket", gone, "vm", "list"}, ExitUnreachable, gone},
	}
	for _, tc := range cases {
		code, stdout, stderr := run(tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr)
		}
		if !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, stderr, tc.stderr)
		}
		if code != ExitOK {
			if stdout != "" {
				t.Errorf("%v: failure printed on stdout: %q", tc.args, stdout)
			}
			if !strings.HasPrefix(stderr, "banger: ") {
				t.Errorf("%v: stderr %q does not start with the error line", tc.args, stderr)
			}
			// One error line, plus at most one hint line.
			if n := strings.Count(stderr, "\n"); n < 1 || n > 2 {
				t.Errorf("%v: stderr has %d lines: %q", tc.args, n, stderr)
			}
		}
	}
}

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// fakeDaemon serves the real API over fake services on a Unix socket. Every
// show-like call answers with err when it is set.
func fakeDaemon(t *testing.T, err error) string {
	t.Helper()
	dir, mkErr := os.MkdirTemp("", "bcli")
	if mkErr != nil {
		t.Fatal(mkErr)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	ln, lnErr := net.Listen("unix", sock)
	if lnErr != nil {
		t.Fatal(lnErr)
	}
	svc := server.Services{Kernels: fakeKernels{err}, Images: fakeImages{err}, VMs: fakeVMs{err: err}, Guests: fakeVMs{err: err},
		Snapshots: fakeVMs{err: err}, Secrets: fakeSecrets{err: err}}
	srv := &http.Server{Handler: server.New(svc, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

type fakeKernels struct{ err error }

func (f fakeKernels) Catalog(context.Context) ([]api.KernelCatalogEntry, error) {
	return []api.KernelCatalogEntry{{Name: "debian-12-cloud", Distro: "debian"}}, nil
}
func (f fakeKernels) Pull(context.Context, api.KernelPullParams, func(api.ProgressEvent)) (api.KernelEntry, error) {
	return api.KernelEntry{}, api.Errorf(api.ErrNotImplemented, "not in this fake")
}
func (f fakeKernels) Import(context.Context, api.KernelImportParams) (api.KernelEntry, error) {
	return api.KernelEntry{}, api.Errorf(api.ErrNotImplemented, "not in this fake")
}
func (f fakeKernels) List(context.Context) ([]api.KernelEntry, error) {
	return []api.KernelEntry{{Name: "k1", KernelVersion: "6.1"}}, nil
}
func (f fakeKernels) Show(_ context.Context, name string) (api.KernelEntry, error) {
	return api.KernelEntry{Name: name}, f.err
}
func (f fakeKernels) Delete(context.Context, string) error { return f.err }

type fakeImages struct {
	err error
}

func (f fakeImages) Pull(context.Context, api.ImagePullParams, func(api.ProgressEvent)) (model.Image, error) {
	return model.Image{}, api.Errorf(api.ErrNotImplemented, "not in this fake")
}
func (f fakeImages) Import(context.Context, api.ImageImportParams, func(api.ProgressEvent)) (model.Image, error) {
	return model.Image{}, api.Errorf(api.ErrNotImplemented, "not in this fake")
}
func (f fakeImages) Build(context.Context, api.ImageBuildParams, func(api.ProgressEvent)) (model.Image, error) {
	return model.Image{}, api.Errorf(api.ErrNotImplemented, "not in this fake")
}
func (f fakeImages) Register(context.Context, api.ImageRegisterParams) (model.Image, error) {
	return model.Image{}, api.Errorf(api.ErrNotImplemented, "not in this fake")
}
func (f fakeImages) List(context.Context) ([]model.Image, error) {
	return []model.Image{{ID: "img1", Name: "i1", Source: "oci"}}, nil
}
func (f fakeImages) Show(_ context.Context, ref string) (model.Image, error) {
	return model.Image{ID: "img1", Name: ref}, f.err
}
func (f fakeImages) Delete(context.Context, string) error { return f.err }

// fakeVMs answers the read routes; the others are left to the embedded nil
// interface (they are never called here).
type fakeVMs struct {
	server.VMService
	server.GuestService
	err error
}

func (f fakeVMs) vm(ref string) model.VMRecord {
	return model.VMRecord{ID: "id-" + ref, Name: ref, State: model.VMRunning, ImageName: "i1", VCPUCount: 1, MemoryMiB: 256}
}
func (f fakeVMs) CreateStatus(_ context.Context, id string) (api.VMCreateOperation, error) {
	return api.VMCreateOperation{ID: id, VMName: "v1", Stage: "ready", Done: true, Success: true}, f.err
}
func (f fakeVMs) WaitCreateStatus(ctx context.Context, id, _ string) (api.VMCreateOperation, error) {
	return f.CreateStatus(ctx, id)
}
func (f fakeVMs) List(context.Context) ([]model.VMRecord, error) {
	return []model.VMRecord{f.vm("v1")}, nil
}
func (f fakeVMs) Show(_ context.Context, ref string) (model.VMRecord, error) { return f.vm(ref), f.err }
func (f fakeVMs) Stats(_ context.Context, ref string) (model.VMRecord, model.VMStats, error) {
	return f.vm(ref), model.VMStats{State: model.VMRunning}, f.err
}
func (f fakeVMs) Logs(_ context.Context, ref string) (string, error) {
	return "/tmp/" + ref + ".log", f.err
}
func (f fakeVMs) Health(_ context.Context, ref string) (api.VMHealthResult, error) {
	return api.VMHealthResult{Name: ref, Healthy: true, Checks: []api.VMHealthCheck{{Name: "agent", OK: true}}}, f.err
}
func (f fakeVMs) Ping(_ context.Context, ref string) (api.VMPingResult, error) {
	return api.VMPingResult{Name: ref, Alive: true}, f.err
}
func (f fakeVMs) Ports(_ context.Context, ref string) (api.VMPortsResult, error) {
	return api.VMPortsResult{Name: ref, Ports: []api.VMPort{{Proto: "tcp", Port: 22}}}, f.err
}
