package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpCall calls a tool that must succeed and decodes its structured result.
func mcpCall(t *testing.T, cs *mcp.ClientSession, name string, args, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("%s: tool error: %s", name, mcpText(res))
	}
	if out != nil {
		data, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s: decode %s: %v", name, data, err)
		}
	}
}

func mcpText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// mcpStdio starts 'banger mcp' on d's socket and connects the SDK's client.
func mcpStdio(t *testing.T, d *daemon, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "banger"), "--socket", d.socket, "mcp")
	cmd.Env = d.env()
	cmd.Stderr = os.Stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e"}, opts).Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect to banger mcp: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

type mcpBearer struct{ token string }

func (b mcpBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// mcpHTTP starts 'banger mcp --http 127.0.0.1:0' with a token file and
// returns its endpoint and the token.
func mcpHTTP(t *testing.T, d *daemon) (endpoint, token string) {
	t.Helper()
	token = "e2e-token-0123456789abcdef"
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte(token+"\n"), 0o600)
	cmd := exec.Command(filepath.Join(binDir, "banger"), "--socket", d.socket, "mcp", "--http", "127.0.0.1:0", "--token-file", tokFile)
	cmd.Env = d.env()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Errorf("banger mcp --http did not exit on SIGINT")
			cmd.Process.Kill()
		}
	})
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "banger mcp: serving "); ok {
			go func() {
				for sc.Scan() {
				}
			}()
			return u, token
		}
		t.Logf("banger mcp: %s", sc.Text())
	}
	t.Fatal("banger mcp --http did not say where it serves")
	return "", ""
}

type mcpVMResult struct {
	VM struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"vm"`
}

type mcpExecResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	JobID    string `json:"job_id"`
}

type mcpJobOutput struct {
	State    string `json:"state"`
	ExitCode *int   `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// mcpWaitJob reads a job until it is no longer running (bounded by the
// test's timeout: the guest decides how fast it runs).
func mcpWaitJob(t *testing.T, cs *mcp.ClientSession, vm, id string) mcpJobOutput {
	t.Helper()
	for {
		var o mcpJobOutput
		mcpCall(t, cs, "vm_job_output", map[string]any{"vm": vm, "job_id": id}, &o)
		if o.State != "running" {
			return o
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestMCP drives the whole agent loop through 'banger mcp' with the SDK's
// client, over stdio and over HTTP, against a real daemon and VM.
func TestMCP(t *testing.T) {
	d := sharedDaemon(t)
	const vm = "mcp1"
	var mu sync.Mutex
	var progress []string
	cs := mcpStdio(t, d, &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		progress = append(progress, r.Params.Message)
		mu.Unlock()
	}})

	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		if s, _ := tool.InputSchema.(map[string]any); s["type"] != "object" {
			t.Errorf("%s: input schema %v", tool.Name, tool.InputSchema)
		}
	}
	for _, want := range []string{"vm_create", "vm_list", "vm_show", "vm_start", "vm_stop", "vm_delete", "vm_exec", "vm_job_output",
		"vm_job_kill", "file_read", "file_write", "file_edit", "file_list", "file_glob", "file_search", "workspace_prepare", "workspace_export", "vm_ports"} {
		if !slices.Contains(names, want) {
			t.Errorf("tool %s not listed (have %v)", want, names)
		}
	}

	// Create, with progress.
	params := &mcp.CallToolParams{Name: "vm_create", Arguments: map[string]any{"name": vm, "image": "bb", "memory_mib": 256, "vcpus": 1}}
	params.SetProgressToken("create-1")
	res, err := cs.CallTool(context.Background(), params)
	if err != nil || res.IsError {
		t.Fatalf("vm_create: %v %s", err, mcpText(res))
	}
	defer d.run("vm", "delete", "--force", vm)
	// Notifications travel apart from the result: the last may trail it.
	lastReady := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(progress) > 0 && strings.HasPrefix(progress[len(progress)-1], "ready")
	}
	for i := 0; i < 100 && !lastReady(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if !lastReady() {
		mu.Lock()
		t.Errorf("create progress %q, want stages ending with ready", progress)
		mu.Unlock()
	}

	// Files: write, edit, read.
	mcpCall(t, cs, "file_write", map[string]any{"vm": vm, "path": "/root/notes/hello.txt", "content": "hello world\nsecond line\n"}, nil)
	mcpCall(t, cs, "file_edit", map[string]any{"vm": vm, "path": "/root/notes/hello.txt", "old_string": "world", "new_string": "banger"}, nil)
	res, _ = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "file_edit",
		Arguments: map[string]any{"vm": vm, "path": "/root/notes/hello.txt", "old_string": "absent", "new_string": "x"}})
	if !res.IsError || mcpText(res) != "old_string not found in /root/notes/hello.txt" {
		t.Errorf("edit of a missing string: %v %q", res.IsError, mcpText(res))
	}
	var rd struct {
		Content string `json:"content"`
	}
	mcpCall(t, cs, "file_read", map[string]any{"vm": vm, "path": "notes/hello.txt"}, &rd)
	if rd.Content != "hello banger\nsecond line\n" {
		t.Errorf("file_read: %q", rd.Content)
	}
	var ex mcpExecResult
	mcpCall(t, cs, "vm_exec", map[string]any{"vm": vm, "command": []string{"cat", "hello.txt"}, "cwd": "/root/notes"}, &ex)
	if ex.ExitCode != 0 || ex.Stdout != "hello banger\nsecond line\n" {
		t.Errorf("exec cat: %+v", ex)
	}
	var sr struct {
		Matches []struct {
			Path string `json:"path"`
			Line int    `json:"line"`
		} `json:"matches"`
	}
	mcpCall(t, cs, "file_search", map[string]any{"vm": vm, "pattern": "sec.nd", "path": "/root/notes"}, &sr)
	if len(sr.Matches) != 1 || sr.Matches[0].Path != "/root/notes/hello.txt" || sr.Matches[0].Line != 2 {
		t.Errorf("file_search: %+v", sr)
	}

	// A background job, then one that is killed.
	mcpCall(t, cs, "vm_exec", map[string]any{"vm": vm, "shell": "echo start; sleep 1; echo done >&2; exit 5", "background": true}, &ex)
	if ex.JobID == "" {
		t.Fatalf("background exec returned no job id: %+v", ex)
	}
	o := mcpWaitJob(t, cs, vm, ex.JobID)
	if o.State != "exited" || o.ExitCode == nil || *o.ExitCode != 5 || o.Stdout != "start\n" || o.Stderr != "done\n" {
		t.Errorf("job: %+v", o)
	}
	mcpCall(t, cs, "vm_exec", map[string]any{"vm": vm, "shell": "sleep 600", "background": true}, &ex)
	mcpCall(t, cs, "vm_job_kill", map[string]any{"vm": vm, "job_id": ex.JobID}, nil)
	if o := mcpWaitJob(t, cs, vm, ex.JobID); o.State != "killed" {
		t.Errorf("killed job: %+v", o)
	}

	// Workspace in, edit in the guest, patch out (busybox has no git: the
	// agent extracts it; workspace export needs readlink).
	mcpCall(t, cs, "vm_exec", map[string]any{"vm": vm, "command": []string{"ln", "-sf", "/bin/busybox", "/bin/readlink"}}, nil)
	repo := filepath.Join(t.TempDir(), "repo")
	os.Mkdir(repo, 0o755)
	hostGit(t, repo, "init", "-q", "--initial-branch=main")
	writeFiles(t, repo, map[string]string{"main.go": "package main\n\nfunc main() {}\n"})
	hostGit(t, repo, "add", "-A")
	hostGit(t, repo, "commit", "-q", "-m", "one")
	mcpCall(t, cs, "workspace_prepare", map[string]any{"vm": vm, "source": repo, "guest_path": "/root/ws"}, nil)
	mcpCall(t, cs, "file_edit", map[string]any{"vm": vm, "path": "/root/ws/main.go", "old_string": "func main() {}", "new_string": "func main() { println(\"hi\") }"}, nil)
	var patch struct {
		Patch        string   `json:"patch"`
		ChangedFiles []string `json:"changed_files"`
	}
	mcpCall(t, cs, "workspace_export", map[string]any{"vm": vm}, &patch)
	if !slices.Equal(patch.ChangedFiles, []string{"main.go"}) || !strings.Contains(patch.Patch, `+func main() { println("hi") }`) {
		t.Errorf("export: %+v", patch)
	}

	// The serial log resource.
	rr, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "banger://vm/" + vm + "/serial"})
	if err != nil || len(rr.Contents) != 1 || rr.Contents[0].Text == "" {
		t.Errorf("serial log: %v %+v", err, rr)
	}

	// Over HTTP: no token, no entry; with it, the same VM.
	endpoint, token := mcpHTTP(t, d)
	resp, err := http.Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("request without the token: status %d, want 401", resp.StatusCode)
	}
	hs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-http"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: mcpBearer{token}}}, nil)
	if err != nil {
		t.Fatalf("connect over HTTP: %v", err)
	}
	defer hs.Close()
	var list struct {
		VMs []struct {
			Name string `json:"name"`
		} `json:"vms"`
	}
	mcpCall(t, hs, "vm_list", map[string]any{}, &list)
	if len(list.VMs) == 0 || !slices.ContainsFunc(list.VMs, func(v struct {
		Name string `json:"name"`
	}) bool {
		return v.Name == vm
	}) {
		t.Errorf("vm_list over HTTP: %+v", list)
	}
	mcpCall(t, hs, "vm_exec", map[string]any{"vm": vm, "command": []string{"uname", "-s"}}, &ex)
	if strings.TrimSpace(ex.Stdout) != "Linux" {
		t.Errorf("exec over HTTP: %+v", ex)
	}

	// Delete; the VM is gone and tools say so with the CLI's message.
	mcpCall(t, cs, "vm_delete", map[string]any{"vm": vm, "force": true}, nil)
	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "vm_show", Arguments: map[string]any{"vm": vm}})
	_, cliErr, _ := d.run("vm", "show", vm)
	if err != nil || !res.IsError || "banger: "+mcpText(res) != strings.TrimSpace(cliErr) {
		t.Errorf("vm_show after delete: %v %q, CLI says %q", err, mcpText(res), cliErr)
	}
}

// BenchmarkMCPExec compares the round trip of running `true` in a VM over
// 'banger mcp' (one long-lived server, as a harness uses it) with running
// 'banger vm exec VM -- true' (one CLI process per command). Run with
// -bench MCPExec -run '^$'; it reports p50 and p99 in ms.
func BenchmarkMCPExec(b *testing.B) {
	d := newDaemon(b)
	defer d.cleanup()
	d.must(b, "kernel", "pull", "debian-12-cloud")
	registerBusybox(b, d, "bb")
	const vm = "mcpbench"
	d.must(b, "vm", "create", "--name", vm, "--image", "bb", "--memory", "256", "--vcpus", "1")
	report := func(b *testing.B, times []time.Duration) {
		slices.Sort(times)
		b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.Run("mcp", func(b *testing.B) {
		cmd := exec.Command(filepath.Join(binDir, "banger"), "--socket", d.socket, "mcp")
		cmd.Env = d.env()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil).Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		args := map[string]any{"vm": vm, "command": []string{"true"}}
		cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "vm_exec", Arguments: args}) // connect once
		var times []time.Duration
		b.ResetTimer()
		for b.Loop() {
			start := time.Now()
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "vm_exec", Arguments: args})
			if err != nil || res.IsError {
				b.Fatalf("vm_exec: %v %s", err, mcpText(res))
			}
			times = append(times, time.Since(start))
		}
		report(b, times)
	})
	b.Run("cli", func(b *testing.B) {
		var times []time.Duration
		for b.Loop() {
			start := time.Now()
			if _, errOut, code := d.run("vm", "exec", vm, "--", "true"); code != 0 {
				b.Fatalf("vm exec: %d %s", code, errOut)
			}
			times = append(times, time.Since(start))
		}
		report(b, times)
	})
}
