package mcp

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"banger/internal/api"
	"banger/internal/model"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// fakeDaemon answers the daemon routes the tools use from memory.
type fakeDaemon struct {
	mu       sync.Mutex
	vms      map[string]model.VMRecord
	creates  []api.VMCreateOperation // successive create-status answers
	logPath  string
	patch    []byte
	prepared api.VMWorkspacePrepareParams
	created  []api.VMCreateParams // every create request
	secrets  []model.Secret
	bound    map[string][]string // secret name -> VMs
}

func newFakeDaemon() *fakeDaemon {
	return &fakeDaemon{vms: map[string]model.VMRecord{"dev": {ID: "id-dev", Name: "dev", State: "running"}}}
}

func (f *fakeDaemon) find(ref string) (model.VMRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if vm, ok := f.vms[ref]; ok {
		return vm, nil
	}
	return model.VMRecord{}, api.Errorf(api.ErrNotFound, "vm %q not found", ref)
}

func (f *fakeDaemon) VMCreate(_ context.Context, p api.VMCreateParams) (api.VMCreateOperation, error) {
	f.mu.Lock()
	f.created = append(f.created, p)
	f.mu.Unlock()
	return api.VMCreateOperation{ID: "op1", VMName: p.Name, Stage: "validate"}, nil
}

func (f *fakeDaemon) VMCreateStatus(_ context.Context, id string) (api.VMCreateOperation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := f.creates[0]
	if len(f.creates) > 1 {
		f.creates = f.creates[1:]
	}
	return op, nil
}

func (f *fakeDaemon) VMList(context.Context) ([]model.VMRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []model.VMRecord
	for _, v := range f.vms {
		out = append(out, v)
	}
	return out, nil
}

func (f *fakeDaemon) VMShow(_ context.Context, ref string) (model.VMRecord, error) {
	return f.find(ref)
}
func (f *fakeDaemon) VMStart(_ context.Context, ref string) (model.VMRecord, error) {
	return f.find(ref)
}
func (f *fakeDaemon) VMStop(_ context.Context, ref string) (model.VMRecord, error) {
	return f.find(ref)
}
func (f *fakeDaemon) VMDelete(_ context.Context, p api.VMDeleteParams) error {
	_, err := f.find(p.IDOrName)
	return err
}
func (f *fakeDaemon) VMLogs(_ context.Context, ref string) (string, error) {
	_, err := f.find(ref)
	return f.logPath, err
}
func (f *fakeDaemon) VMPorts(_ context.Context, ref string) (api.VMPortsResult, error) {
	_, err := f.find(ref)
	return api.VMPortsResult{Name: ref}, err
}
func (f *fakeDaemon) WorkspacePrepare(_ context.Context, p api.VMWorkspacePrepareParams) (model.WorkspacePrepareResult, error) {
	f.mu.Lock()
	f.prepared = p
	f.mu.Unlock()
	return model.WorkspacePrepareResult{VMName: p.IDOrName, SourcePath: p.SourcePath, GuestPath: "/root/repo"}, nil
}
func (f *fakeDaemon) WorkspaceExport(_ context.Context, p api.WorkspaceExportParams) (api.WorkspaceExportResult, error) {
	if _, err := f.find(p.IDOrName); err != nil {
		return api.WorkspaceExportResult{}, err
	}
	return api.WorkspaceExportResult{GuestPath: "/root/repo", Patch: f.patch, HasChanges: len(f.patch) > 0, ChangedFiles: []string{"a.txt"}}, nil
}

func (f *fakeDaemon) SecretList(context.Context) ([]model.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.secrets), nil
}
func (f *fakeDaemon) SecretShow(_ context.Context, name string) (api.SecretShowResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.secrets {
		if s.Name == name {
			return api.SecretShowResult{Secret: s, VMs: f.bound[name]}, nil
		}
	}
	return api.SecretShowResult{}, api.Errorf(api.ErrNotFound, "secret %q not found", name)
}

// localGuests is a "guest" that is this machine: commands run with sh in
// their own session (as the guest agent runs them), files are local paths.
type localGuests struct{ d *fakeDaemon }

func (l localGuests) Open(ctx context.Context, vm string) (Guest, error) {
	if _, err := l.d.VMShow(ctx, vm); err != nil {
		return nil, err
	}
	return localGuest{}, nil
}
func (localGuests) Forget(string) {}

type localGuest struct{}

func (localGuest) Run(ctx context.Context, cmd string, stdout, stderr io.Writer) (int, error) {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Stdout, c.Stderr = stdout, stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	err := c.Run()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

func (localGuest) Stat(p string) (fs.FileInfo, error) { return os.Lstat(p) }

func (localGuest) ReadDir(p string) ([]fs.FileInfo, error) {
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var out []fs.FileInfo
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			out = append(out, fi)
		}
	}
	return out, nil
}

func (localGuest) ReadFile(p string, off, max int64) ([]byte, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, _ := f.Stat()
	f.Seek(off, io.SeekStart)
	data, err := io.ReadAll(io.LimitReader(f, max))
	return data, st.Size(), err
}

func (localGuest) WriteFile(p string, data []byte, mode fs.FileMode, mkdirs bool) error {
	if mkdirs {
		os.MkdirAll(filepath.Dir(p), 0o755)
	}
	if st, err := os.Stat(p); err == nil {
		mode = st.Mode().Perm()
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// connect starts the server on in-memory transports and returns a client
// session.
func connect(t *testing.T, o Options, copts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	ctx := context.Background()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := NewServer(o).Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test"}, copts).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func fakeServer(t *testing.T) (*mcp.ClientSession, *fakeDaemon) {
	d := newFakeDaemon()
	return connect(t, Options{Daemon: d, Guests: localGuests{d}, JobDir: t.TempDir()}, nil), d
}

// call calls a tool that must succeed and decodes its structured result.
func call(t *testing.T, cs *mcp.ClientSession, name string, args, out any) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("%s: tool error: %s", name, text(res))
	}
	if out != nil {
		data, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s: decode %s: %v", name, data, err)
		}
	}
}

// callErr calls a tool that must fail with a tool error and returns its text.
func callErr(t *testing.T, cs *mcp.ClientSession, name string, args any) string {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v (want a tool error)", name, err)
	}
	if !res.IsError {
		t.Fatalf("%s: succeeded, want a tool error: %s", name, text(res))
	}
	return text(res)
}

func text(res *mcp.CallToolResult) string {
	s := ""
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			s += tc.Text
		}
	}
	return s
}
