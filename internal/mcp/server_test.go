package mcp

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/model"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var (
	destructiveTools = []string{"vm_stop", "vm_delete", "vm_exec", "vm_job_kill", "file_write", "file_edit", "workspace_prepare"}
	readOnlyTools    = []string{"vm_list", "vm_show", "vm_ports", "vm_job_output", "file_read", "file_list", "file_glob", "file_search", "workspace_export", "secret_list"}
	additiveTools    = []string{"vm_create", "vm_start"}
)

func TestToolsHaveSchemasAndAnnotations(t *testing.T) {
	cs, _ := fakeServer(t)
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*mcp.Tool{}
	for _, tool := range res.Tools {
		got[tool.Name] = tool
	}
	all := slices.Concat(destructiveTools, readOnlyTools, additiveTools)
	if len(got) != len(all) {
		t.Errorf("server lists %d tools, want %d", len(got), len(all))
	}
	for _, name := range all {
		tool := got[name]
		if tool == nil {
			t.Errorf("tool %s missing", name)
			continue
		}
		in, _ := tool.InputSchema.(map[string]any)
		if in["type"] != "object" {
			t.Errorf("%s: input schema %v, want an object schema", name, tool.InputSchema)
		}
		if out, _ := tool.OutputSchema.(map[string]any); out["type"] != "object" {
			t.Errorf("%s: output schema %v, want an object schema", name, tool.OutputSchema)
		}
		if tool.Description == "" || tool.Annotations == nil {
			t.Errorf("%s: no description or annotations", name)
			continue
		}
		a := tool.Annotations
		switch {
		case slices.Contains(destructiveTools, name):
			if a.ReadOnlyHint || a.DestructiveHint == nil || !*a.DestructiveHint {
				t.Errorf("%s: annotations %+v, want destructive", name, a)
			}
		case slices.Contains(readOnlyTools, name):
			if !a.ReadOnlyHint {
				t.Errorf("%s: annotations %+v, want read-only", name, a)
			}
		default:
			if a.ReadOnlyHint || a.DestructiveHint == nil || *a.DestructiveHint {
				t.Errorf("%s: annotations %+v, want additive (not destructive)", name, a)
			}
		}
	}
	// vm_exec's schema names its inputs.
	props, _ := got["vm_exec"].InputSchema.(map[string]any)["properties"].(map[string]any)
	for _, p := range []string{"vm", "command", "shell", "cwd", "env", "timeout_seconds", "background"} {
		if props[p] == nil {
			t.Errorf("vm_exec input schema lacks %q", p)
		}
	}
}

func TestSchemaValidationRejectsBadInput(t *testing.T) {
	cs, _ := fakeServer(t)
	// vm is required; a wrong type is refused before the tool runs.
	for _, args := range []map[string]any{{}, {"vm": 3}} {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "vm_show", Arguments: args})
		if err == nil && !res.IsError {
			t.Errorf("vm_show %v accepted", args)
		}
	}
}

func TestDaemonErrorsAreToolErrorsWithTheCLIMessage(t *testing.T) {
	cs, _ := fakeServer(t)
	msg := callErr(t, cs, "vm_show", map[string]any{"vm": "nope"})
	if msg != `vm "nope" not found` {
		t.Errorf("error text %q, want the daemon's one-line message", msg)
	}
	msg = callErr(t, cs, "file_read", map[string]any{"vm": "nope", "path": "/etc/hostname"})
	if msg != `vm "nope" not found` {
		t.Errorf("error text %q", msg)
	}
}

func TestFileEdit(t *testing.T) {
	cs, _ := fakeServer(t)
	p := filepath.Join(t.TempDir(), "sub", "f.txt")
	call(t, cs, "file_write", map[string]any{"vm": "dev", "path": p, "content": "alpha beta\nbeta gamma\n", "mode": "0600"}, nil)
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file_write: %v %v", st, err)
	}
	edit := func(old, new string, all bool) map[string]any {
		return map[string]any{"vm": "dev", "path": p, "old_string": old, "new_string": new, "replace_all": all}
	}
	if msg := callErr(t, cs, "file_edit", edit("delta", "x", false)); msg != "old_string not found in "+p {
		t.Errorf("not found: %q", msg)
	}
	if msg := callErr(t, cs, "file_edit", edit("beta", "x", false)); !strings.Contains(msg, "occurs 2 times") {
		t.Errorf("not unique: %q", msg)
	}
	callErr(t, cs, "file_edit", edit("", "x", false))
	var r FileEditResult
	call(t, cs, "file_edit", edit("alpha ", "ALPHA\n", false), &r)
	if r.Replacements != 1 {
		t.Errorf("replacements %d", r.Replacements)
	}
	call(t, cs, "file_edit", edit("beta", "BETA", true), &r)
	if r.Replacements != 2 {
		t.Errorf("replace_all replacements %d", r.Replacements)
	}
	data, _ := os.ReadFile(p)
	if string(data) != "ALPHA\nBETA\nBETA gamma\n" {
		t.Errorf("file is %q", data)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("edit changed the mode to %v", st.Mode())
	}
	var rd FileReadResult
	call(t, cs, "file_read", map[string]any{"vm": "dev", "path": p, "offset": 2, "limit": 1}, &rd)
	if rd.Content != "BETA\n" || rd.StartLine != 2 || rd.EndLine != 2 || !rd.More {
		t.Errorf("file_read window: %+v", rd)
	}
	rd = FileReadResult{}
	call(t, cs, "file_read", map[string]any{"vm": "dev", "path": p}, &rd)
	if rd.Content != string(data) || rd.EndLine != 3 || rd.More {
		t.Errorf("file_read whole: %+v", rd)
	}
	if msg := callErr(t, cs, "file_read", map[string]any{"vm": "dev", "path": p + ".missing"}); !strings.Contains(msg, "no such file") {
		t.Errorf("missing file: %q", msg)
	}
}

func TestFileListGlobSearch(t *testing.T) {
	cs, _ := fakeServer(t)
	root := t.TempDir()
	for p, c := range map[string]string{"a.go": "package a\nfunc Hello() {}\n", "sub/b.go": "package b\n// hello world\n",
		"sub/c.txt": "Hello text\n", ".git/x.go": "hello\n", "bin.dat": "hello\x00"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	var ls FileListResult
	call(t, cs, "file_list", map[string]any{"vm": "dev", "path": root}, &ls)
	var names []string
	for _, e := range ls.Entries {
		names = append(names, e.Name+":"+e.Type)
	}
	slices.Sort(names)
	if strings.Join(names, ",") != ".git:dir,a.go:file,bin.dat:file,sub:dir" {
		t.Errorf("file_list: %v", names)
	}
	var gl FileGlobResult
	call(t, cs, "file_glob", map[string]any{"vm": "dev", "path": root, "pattern": "**/*.go"}, &gl)
	want := []string{filepath.Join(root, "a.go"), filepath.Join(root, "sub/b.go")}
	if !slices.Equal(gl.Paths, want) {
		t.Errorf("file_glob **/*.go: %v, want %v (.git skipped)", gl.Paths, want)
	}
	call(t, cs, "file_glob", map[string]any{"vm": "dev", "path": root, "pattern": "sub/*.txt"}, &gl)
	if !slices.Equal(gl.Paths, []string{filepath.Join(root, "sub/c.txt")}) {
		t.Errorf("file_glob sub/*.txt: %v", gl.Paths)
	}
	var sr FileSearchResult
	call(t, cs, "file_search", map[string]any{"vm": "dev", "path": root, "pattern": "hello", "ignore_case": true}, &sr)
	var hits []string
	for _, m := range sr.Matches {
		rel, _ := filepath.Rel(root, m.Path)
		hits = append(hits, rel+":"+strings.TrimSpace(m.Text))
	}
	if strings.Join(hits, "|") != "a.go:func Hello() {}|sub/b.go:// hello world|sub/c.txt:Hello text" {
		t.Errorf("file_search: %v (binary and .git skipped)", hits)
	}
	call(t, cs, "file_search", map[string]any{"vm": "dev", "path": root, "pattern": "hello", "glob": "*.go"}, &sr)
	if len(sr.Matches) != 1 || sr.Matches[0].Line != 2 {
		t.Errorf("file_search with glob: %+v", sr.Matches)
	}
	callErr(t, cs, "file_search", map[string]any{"vm": "dev", "path": root, "pattern": "("})
}

func TestExecCapsOutput(t *testing.T) {
	d := newFakeDaemon()
	cs := connect(t, Options{Daemon: d, Guests: localGuests{d}, OutputCap: 100}, nil)
	var r ExecResult
	call(t, cs, "vm_exec", map[string]any{"vm": "dev", "shell": "i=0; while [ $i -lt 100 ]; do printf '%04d\\n' $i; i=$((i+1)); done; echo oops >&2; exit 3"}, &r)
	if r.ExitCode != 3 || r.StdoutBytes != 500 || !r.StdoutTruncated {
		t.Fatalf("exec: %+v", r)
	}
	if !strings.HasPrefix(r.Stdout, "0000\n0001\n") || !strings.HasSuffix(r.Stdout, "0098\n0099\n") || !strings.Contains(r.Stdout, "[... 400 bytes omitted ...]") {
		t.Errorf("capped stdout %q", r.Stdout)
	}
	if r.Stderr != "oops\n" || r.StderrTruncated {
		t.Errorf("stderr %q truncated=%v", r.Stderr, r.StderrTruncated)
	}
	dir := t.TempDir()
	call(t, cs, "vm_exec", map[string]any{"vm": "dev", "command": []string{"sh", "-c", `printf '%s|%s|%s' "$1" "$GREETING" "$(pwd)"`, "x", "a 'b' c"},
		"cwd": dir, "env": map[string]string{"GREETING": "hi $there"}}, &r)
	if r.ExitCode != 0 || r.Stdout != "a 'b' c|hi $there|"+dir {
		t.Errorf("argv exec: %+v", r)
	}
	callErr(t, cs, "vm_exec", map[string]any{"vm": "dev"})
	callErr(t, cs, "vm_exec", map[string]any{"vm": "dev", "shell": "true", "command": []string{"true"}})
	callErr(t, cs, "vm_exec", map[string]any{"vm": "dev", "shell": "true", "env": map[string]string{"A;B": "x"}})
	call(t, cs, "vm_exec", map[string]any{"vm": "dev", "shell": "sleep 30", "timeout_seconds": 1}, &r)
	if !r.TimedOut || r.ExitCode != -1 {
		t.Errorf("timeout: %+v", r)
	}
}

func TestCapBuffer(t *testing.T) {
	var all strings.Builder
	b := newCapBuffer(10)
	for _, s := range []string{"abc", "defghij", "klm", "nopqrstuvwxyz"} {
		b.Write([]byte(s))
		all.WriteString(s)
	}
	text, total, trunc := b.Result()
	if total != 26 || !trunc || text != "abcde\n[... 16 bytes omitted ...]\nvwxyz" {
		t.Errorf("got %q %d %v", text, total, trunc)
	}
	b = newCapBuffer(10)
	b.Write([]byte("0123456789"))
	if text, _, trunc := b.Result(); text != "0123456789" || trunc {
		t.Errorf("exact cap: %q %v", text, trunc)
	}
	b.Write([]byte("A"))
	if text, _, _ := b.Result(); text != "01234\n[... 1 bytes omitted ...]\n6789A" {
		t.Errorf("cap+1: %q", text)
	}
}

func TestBackgroundJob(t *testing.T) {
	cs, _ := fakeServer(t)
	var r ExecResult
	call(t, cs, "vm_exec", map[string]any{"vm": "dev", "shell": "echo out; echo err >&2; read x; exit 7", "background": true}, &r)
	if len(r.JobID) != 16 {
		t.Fatalf("job id %q", r.JobID)
	}
	var o JobOutput
	for o.State != "exited" {
		call(t, cs, "vm_job_output", map[string]any{"vm": "dev", "job_id": r.JobID}, &o)
		if o.State == "killed" {
			t.Fatalf("job gone: %+v", o)
		}
	}
	if *o.ExitCode != 7 || o.Stdout != "out\n" || o.Stderr != "err\n" || o.StdoutNextOffset != 4 {
		t.Errorf("job output: %+v", o)
	}
	call(t, cs, "vm_job_output", map[string]any{"vm": "dev", "job_id": r.JobID, "stdout_offset": 2}, &o)
	if o.Stdout != "t\n" {
		t.Errorf("from offset 2: %q", o.Stdout)
	}
	if msg := callErr(t, cs, "vm_job_output", map[string]any{"vm": "dev", "job_id": "../../etc/passwd"}); !strings.Contains(msg, "not a job id") {
		t.Errorf("bad id: %q", msg)
	}
	callErr(t, cs, "vm_job_output", map[string]any{"vm": "dev", "job_id": "0123456789abcdef"})
	callErr(t, cs, "vm_job_kill", map[string]any{"vm": "dev", "job_id": r.JobID, "signal": "STOP"})
}

func TestCreateReportsProgress(t *testing.T) {
	d := newFakeDaemon()
	vm := model.VMRecord{ID: "id-new", Name: "new", State: "running"}
	d.creates = []api.VMCreateOperation{{ID: "op1", Stage: "disks"}, {ID: "op1", Stage: "boot", Detail: "qemu"},
		{ID: "op1", Stage: "ready", Done: true, Success: true, VM: &vm}}
	var mu sync.Mutex
	var msgs []string
	cs := connect(t, Options{Daemon: d, Guests: localGuests{d}}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			defer mu.Unlock()
			msgs = append(msgs, req.Params.Message)
		}})
	params := &mcp.CallToolParams{Name: "vm_create", Arguments: map[string]any{"name": "new"}}
	params.SetProgressToken("tok")
	res, err := cs.CallTool(context.Background(), params)
	if err != nil || res.IsError {
		t.Fatalf("vm_create: %v %s", err, text(res))
	}
	// The client handles notifications apart from the result: the last one
	// may land just after it.
	for i := 0; i < 100; i++ {
		mu.Lock()
		n := len(msgs)
		mu.Unlock()
		if n >= 4 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(msgs, ",") != "validate,disks,boot: qemu,ready" {
		t.Errorf("progress messages %q", msgs)
	}
	d.creates = []api.VMCreateOperation{{ID: "op2", VMName: "bad", Done: true, Error: "no such image"}}
	if msg := callErr(t, cs, "vm_create", map[string]any{"name": "bad"}); msg != "create bad failed: no such image" {
		t.Errorf("failed create: %q", msg)
	}
}

func TestWorkspaceAndSerial(t *testing.T) {
	cs, d := fakeServer(t)
	d.patch = []byte("diff --git a/a.txt b/a.txt\n")
	var ex WorkspaceExportResult
	call(t, cs, "workspace_export", map[string]any{"vm": "dev"}, &ex)
	if ex.Patch != string(d.patch) || !ex.HasChanges {
		t.Errorf("export: %+v", ex)
	}
	call(t, cs, "workspace_prepare", map[string]any{"vm": "dev", "source": "rel/repo"}, nil)
	if !filepath.IsAbs(d.prepared.SourcePath) || !strings.HasSuffix(d.prepared.SourcePath, "/rel/repo") {
		t.Errorf("prepare sent source %q, want it absolute", d.prepared.SourcePath)
	}
	d.logPath = filepath.Join(t.TempDir(), "serial.log")
	os.WriteFile(d.logPath, []byte("Linux version 6.1\nbanger init\n"), 0o644)
	rr, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "banger://vm/dev/serial"})
	if err != nil || len(rr.Contents) != 1 || rr.Contents[0].Text != "Linux version 6.1\nbanger init\n" {
		t.Fatalf("serial resource: %v %+v", err, rr)
	}
	if _, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "banger://vm/nope/serial"}); err == nil || !strings.Contains(err.Error(), `vm "nope" not found`) {
		t.Errorf("serial of unknown vm: %v", err)
	}
	tr, err := cs.ListResourceTemplates(context.Background(), nil)
	if err != nil || len(tr.ResourceTemplates) != 1 || tr.ResourceTemplates[0].URITemplate != "banger://vm/{name}/serial" {
		t.Errorf("templates: %v %+v", err, tr)
	}
}

func TestJobKill(t *testing.T) {
	cs, _ := fakeServer(t)
	var r ExecResult
	call(t, cs, "vm_exec", map[string]any{"vm": "dev", "shell": "sleep 600", "background": true}, &r)
	var k JobKillResult
	call(t, cs, "vm_job_kill", map[string]any{"vm": "dev", "job_id": r.JobID, "signal": "kill"}, &k)
	if k.Signal != "KILL" {
		t.Errorf("kill: %+v", k)
	}
}
