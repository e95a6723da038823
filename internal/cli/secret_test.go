package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"banger/internal/api"
	"banger/internal/model"
	"banger/internal/server"
)

func init() {
	readCommands = append(readCommands, []string{"secret", "list"}, []string{"secret", "show", "gh"})
}

// fakeSecrets answers the secret routes and records what add received.
type fakeSecrets struct{ err error }

var (
	secretsMu sync.Mutex
	secretGot []api.SecretAddParams
)

func (f fakeSecrets) Add(_ context.Context, p api.SecretAddParams) (model.Secret, error) {
	secretsMu.Lock()
	secretGot = append(secretGot, p)
	secretsMu.Unlock()
	return model.Secret{ID: "s1", Name: p.Name, Hosts: p.Hosts, Header: p.Header}, f.err
}
func (f fakeSecrets) List(context.Context) ([]model.Secret, error) {
	return []model.Secret{{ID: "s1", Name: "gh", Hosts: []string{"api.github.com"}}}, nil
}
func (f fakeSecrets) Show(_ context.Context, ref string) (model.Secret, []string, error) {
	return model.Secret{ID: "s1", Name: ref, Hosts: []string{"api.github.com"}}, []string{"v1"}, f.err
}
func (f fakeSecrets) Remove(context.Context, string) error { return f.err }

func runIn(stdin string, args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

// TestSecretAddReadsStdin: the value comes from standard input (one
// trailing newline dropped), is sent once, and is never printed.
func TestSecretAddReadsStdin(t *testing.T) {
	sock := fakeDaemon(t, nil)
	secretsMu.Lock()
	secretGot = nil
	secretsMu.Unlock()
	const value = "tok-STDIN-VALUE-42"
	for _, j := range []bool{false, true} {
		args := []string{"--socket", sock, "secret", "add", "gh", "--host", "api.github.com", "--host", "*.github.com", "--header", "Authorization: Bearer {}"}
		if j {
			args = append([]string{"--json"}, args...)
		}
		code, stdout, stderr := runIn(value+"\n", args...)
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if strings.Contains(stdout+stderr, value) {
			t.Fatalf("the value was printed: %q %q", stdout, stderr)
		}
	}
	secretsMu.Lock()
	got := secretGot[0]
	secretsMu.Unlock()
	want := api.SecretAddParams{Name: "gh", Hosts: []string{"api.github.com", "*.github.com"}, Header: "Authorization: Bearer {}", Value: []byte(value)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("daemon got %+v, want %+v", got, want)
	}
	code, stdout, _ := run("--socket", sock, "secret", "show", "gh")
	if code != ExitOK || !strings.Contains(stdout, "vms:") || !strings.Contains(stdout, "v1") {
		t.Errorf("show: %d %s", code, stdout)
	}
}

// TestSecretAddRefusals: each bad input is one line and a usage exit,
// and nothing reaches the daemon.
func TestSecretAddRefusals(t *testing.T) {
	sock := fakeDaemon(t, nil)
	secretsMu.Lock()
	secretGot = nil
	secretsMu.Unlock()
	big := strings.Repeat("x", 64<<10+1)
	cases := []struct {
		stdin string
		args  []string
		msg   string
	}{
		{"", []string{"gh", "--host", "a.example.com"}, "the secret value is empty"},
		{"\n", []string{"gh", "--host", "a.example.com"}, "the secret value is empty"},
		{big, []string{"gh", "--host", "a.example.com"}, "larger than 65536 bytes"},
		{"v", []string{"gh"}, "--host is required"},
		{"v", []string{"gh", "--host", "a.example.com", "--header", "Authorization: Bearer"}, "with {} where the value goes"},
		{"v", []string{"gh", "--host", "a.example.com", "--header", "no colon {}"}, "with {} where the value goes"},
		{"v", []string{"9bad", "--host", "a.example.com"}, "is not valid"},
		{"v", []string{"gh", "tok-on-argv", "--host", "a.example.com"}, "got 2 arguments"},
	}
	for _, tc := range cases {
		code, stdout, stderr := runIn(tc.stdin, append([]string{"--socket", sock, "secret", "add"}, tc.args...)...)
		if code != ExitUsage || !strings.Contains(stderr, tc.msg) || stdout != "" || strings.Count(stderr, "\n") > 2 {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, stderr)
		}
	}
	secretsMu.Lock()
	defer secretsMu.Unlock()
	if len(secretGot) != 0 {
		t.Fatalf("refused adds reached the daemon: %d", len(secretGot))
	}
}

// recVMs records vm create and vm set parameters.
type recVMs struct {
	server.VMService
	mu  sync.Mutex
	got []any
}

func (r *recVMs) Create(_ context.Context, p api.VMCreateParams) (api.VMCreateOperation, error) {
	r.mu.Lock()
	r.got = append(r.got, p)
	r.mu.Unlock()
	return api.VMCreateOperation{ID: "op1"}, nil
}
func (r *recVMs) Set(_ context.Context, p api.VMSetParams) (model.VMRecord, error) {
	r.mu.Lock()
	r.got = append(r.got, p)
	r.mu.Unlock()
	return model.VMRecord{Name: p.IDOrName, Secrets: []model.SecretBinding{{Name: "gh", Env: "GH", Placeholder: "banger-secret-gh-000000000000000000000000"}}}, nil
}

// TestVMSecretFlags: --secret NAME[=ENVVAR] (repeatable) and --no-secret
// reach the daemon as given; malformed ones are usage errors.
func TestVMSecretFlags(t *testing.T) {
	dir, _ := os.MkdirTemp("", "bcli")
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	vms := &recVMs{}
	srv := &http.Server{Handler: server.New(server.Services{VMs: vms}, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	if code, _, stderr := run("--socket", sock, "vm", "create", "--image", "i1", "--detach", "--secret", "gh", "--secret", "openai=OPENAI_API_KEY"); code != ExitOK {
		t.Fatalf("create: %d %s", code, stderr)
	}
	code, stdout, stderr := run("--socket", sock, "vm", "set", "v1", "--no-secret", "gh", "--secret", "x=X")
	if code != ExitOK || !strings.Contains(stdout, "gh ($GH)") {
		t.Fatalf("set: %d %s %s", code, stdout, stderr)
	}
	want := []any{
		api.VMCreateParams{ImageName: "i1", Secrets: []api.SecretRef{{Name: "gh"}, {Name: "openai", Env: "OPENAI_API_KEY"}}},
		api.VMSetParams{IDOrName: "v1", Secrets: []api.SecretRef{{Name: "x", Env: "X"}}, NoSecrets: []string{"gh"}},
	}
	vms.mu.Lock()
	got := vms.got
	vms.mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("daemon got %d calls", len(got))
	}
	gc := got[0].(api.VMCreateParams)
	if !reflect.DeepEqual(gc.Secrets, want[0].(api.VMCreateParams).Secrets) || !reflect.DeepEqual(got[1], want[1]) {
		t.Fatalf("daemon got %+v, want %+v", got, want)
	}
	for _, bad := range [][]string{{"vm", "create", "--image", "i1", "--secret", "=X"}, {"vm", "create", "--image", "i1", "--secret", "gh="},
		{"vm", "set", "v1", "--secret", "gh=1X"}} {
		if code, _, stderr := run(append([]string{"--socket", sock}, bad...)...); code != ExitUsage || !strings.Contains(stderr, "--secret") {
			t.Errorf("%v: exit %d %q", bad, code, stderr)
		}
	}
}
