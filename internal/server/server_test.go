package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
)

// routeCase describes one route: a valid body, what the service must receive
// from it, the result's top-level JSON fields, the required fields, and the
// capability named when the service is missing.
type routeCase struct {
	path     string
	body     map[string]any
	want     any
	keys     []string
	required []string
	capab    string
	get      bool
}

func ptr[T any](v T) *T { return &v }

var routeCases = []routeCase{
	{path: "/v1/ping", keys: []string{"status", "pid", "version"}, get: true},
	{path: "/v1/shutdown", keys: []string{"status"}, capab: "daemon shutdown"},

	{path: "/v1/kernel/catalog", want: "catalog", keys: []string{"entries"}, capab: kernelsCap, get: true},
	{path: "/v1/kernel/list", want: "list", keys: []string{"entries"}, capab: kernelsCap, get: true},
	{path: "/v1/kernel/show", body: map[string]any{"name": "k"}, want: "k", keys: []string{"entry"}, required: []string{"name"}, capab: kernelsCap},
	{path: "/v1/kernel/pull", body: map[string]any{"name": "k", "force": true}, want: api.KernelPullParams{Name: "k", Force: true},
		keys: []string{"entry"}, required: []string{"name"}, capab: kernelsCap},
	{path: "/v1/kernel/import", body: map[string]any{"name": "k", "from_dir": "/d", "distro": "debian", "arch": "x86_64"},
		want: api.KernelImportParams{Name: "k", FromDir: "/d", Distro: "debian", Arch: "x86_64"},
		keys: []string{"entry"}, required: []string{"name", "from_dir"}, capab: kernelsCap},
	{path: "/v1/kernel/delete", body: map[string]any{"name": "k"}, want: "k", required: []string{"name"}, capab: kernelsCap},

	{path: "/v1/image/list", want: "list", keys: []string{"images"}, capab: imagesCap, get: true},
	{path: "/v1/image/show", body: map[string]any{"id_or_name": "i"}, want: "i", keys: []string{"image"}, required: []string{"id_or_name"}, capab: imagesCap},
	{path: "/v1/image/pull", body: map[string]any{"ref": "docker.io/library/busybox", "name": "bb", "size_bytes": 5},
		want: api.ImagePullParams{Ref: "docker.io/library/busybox", Name: "bb", SizeBytes: 5},
		keys: []string{"image"}, required: []string{"ref"}, capab: imagesCap},
	{path: "/v1/image/import", body: map[string]any{"path": "/a.tar", "name": "a"}, want: api.ImageImportParams{Path: "/a.tar", Name: "a"},
		keys: []string{"image"}, required: []string{"path"}, capab: imagesCap},
	{path: "/v1/image/build", body: map[string]any{"distro": "debian", "suite": "bookworm", "include": []string{"git"}},
		want: api.ImageBuildParams{Distro: "debian", Suite: "bookworm", Include: []string{"git"}},
		keys: []string{"image"}, required: []string{"distro"}, capab: imagesCap},
	{path: "/v1/image/register", body: map[string]any{"name": "r", "rootfs_path": "/r.ext4", "docker": true},
		want: api.ImageRegisterParams{Name: "r", RootfsPath: "/r.ext4", Docker: true},
		keys: []string{"image"}, required: []string{"rootfs_path"}, capab: imagesCap},
	{path: "/v1/image/delete", body: map[string]any{"id_or_name": "i"}, want: "i", required: []string{"id_or_name"}, capab: imagesCap},

	{path: "/v1/vm/create", body: map[string]any{"name": "v", "image_name": "bb", "vcpu_count": 2, "nat_enabled": true},
		want: api.VMCreateParams{Name: "v", ImageName: "bb", VCPUCount: ptr(2), NATEnabled: true}, keys: []string{"operation"}, capab: vmsCap},
	{path: "/v1/vm/create-status", body: map[string]any{"id": "op1"}, want: "op1", keys: []string{"operation"}, required: []string{"id"}, capab: vmsCap},
	{path: "/v1/vm/list", want: "list", keys: []string{"vms"}, capab: vmsCap, get: true},
	{path: "/v1/vm/show", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"vm"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/start", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"vm"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/stop", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"vm"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/restart", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"vm"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/kill", body: map[string]any{"id_or_name": "v", "signal": "KILL"}, want: api.VMKillParams{IDOrName: "v", Signal: "KILL"},
		keys: []string{"vm"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/set", body: map[string]any{"id_or_name": "v", "memory_mib": 512, "nat_enabled": false},
		want: api.VMSetParams{IDOrName: "v", MemoryMiB: ptr(512), NATEnabled: ptr(false)},
		keys: []string{"vm"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/delete", body: map[string]any{"id_or_name": "v", "force": true}, want: api.VMDeleteParams{IDOrName: "v", Force: true},
		required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/stats", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"vm", "stats"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/logs", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"log_path"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/ssh", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"name", "guest_ip"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/authorize-key", body: map[string]any{"id_or_name": "v", "public_key": "ssh-ed25519 AAAA"},
		want: api.VMAuthorizeKeyParams{IDOrName: "v", PublicKey: "ssh-ed25519 AAAA"},
		keys: []string{"name", "host", "port", "host_key"}, required: []string{"id_or_name", "public_key"}, capab: vmsCap},
	{path: "/v1/vm/health", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"name", "healthy"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/ping", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"name", "alive"}, required: []string{"id_or_name"}, capab: vmsCap},
	{path: "/v1/vm/egress", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"name", "policy", "denials"}, required: []string{"id_or_name"}, capab: egressCap},
	{path: "/v1/vm/ports", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"name", "ports"}, required: []string{"id_or_name"}, capab: vmsCap},

	{path: "/v1/vm/workspace/prepare", body: map[string]any{"id_or_name": "v", "source_path": "/src", "branch": "b", "include_untracked": true},
		want: api.VMWorkspacePrepareParams{IDOrName: "v", SourcePath: "/src", Branch: "b", IncludeUntracked: true},
		keys: []string{"workspace"}, required: []string{"id_or_name", "source_path"}, capab: workspacesCap},
	{path: "/v1/vm/workspace/export", body: map[string]any{"id_or_name": "v", "guest_path": "/root/repo"},
		want: api.WorkspaceExportParams{IDOrName: "v", GuestPath: "/root/repo"},
		keys: []string{"guest_path", "base_commit", "patch", "changed_files", "has_changes"}, required: []string{"id_or_name"}, capab: workspacesCap},
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// do sends one request to a server over svc and returns the recorder.
func do(t *testing.T, svc Services, method, path string, body []byte, accept string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "http://banger"+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	New(svc, quietLog()).ServeHTTP(w, req)
	return w
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// without returns a copy of m without key.
func without(m map[string]any, key string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// errorBody checks w is the one JSON error body with status and code, and
// returns its message.
func errorBody(t *testing.T, w *httptest.ResponseRecorder, status int, code string) string {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var raw map[string]map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, w.Body)
	}
	detail, ok := raw["error"]
	if len(raw) != 1 || !ok || len(detail) != 2 {
		t.Fatalf(`error body %s is not {"error":{"code","message"}}`, w.Body)
	}
	if detail["code"] != code {
		t.Errorf("code %v, want %s (body %s)", detail["code"], code, w.Body)
	}
	msg, _ := detail["message"].(string)
	if msg == "" {
		t.Errorf("empty message in %s", w.Body)
	}
	return msg
}

func TestRouteCasesCoverEveryRoute(t *testing.T) {
	var listed []string
	for _, rc := range routeCases {
		listed = append(listed, rc.path)
	}
	routes := New(Services{}, quietLog()).Routes()
	slices.Sort(listed)
	slices.Sort(routes)
	if !slices.Equal(listed, routes) {
		t.Fatalf("test table and Routes() differ:\ntable:  %v\nroutes: %v", listed, routes)
	}
}

func TestRoutesDecodeRequestAndAnswerResult(t *testing.T) {
	for _, rc := range routeCases {
		t.Run(rc.path, func(t *testing.T) {
			f := &fakes{}
			w := do(t, f.services(), http.MethodPost, rc.path, mustJSON(t, rc.body), "")
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if got := f.last(rc.path); !reflect.DeepEqual(got, rc.want) {
				t.Errorf("service received %#v, want %#v", got, rc.want)
			}
			var res map[string]json.RawMessage
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
				t.Fatalf("result is not a JSON object: %v: %s", err, w.Body)
			}
			for _, k := range rc.keys {
				if _, ok := res[k]; !ok {
					t.Errorf("result %s lacks field %q", w.Body, k)
				}
			}
			if rc.keys == nil && len(res) != 0 {
				t.Errorf("result %s, want {}", w.Body)
			}
		})
	}
}

func TestRoutesRejectUnknownFields(t *testing.T) {
	for _, rc := range routeCases {
		t.Run(rc.path, func(t *testing.T) {
			body := without(rc.body, "")
			body["bogus_field"] = 1
			f := &fakes{}
			w := do(t, f.services(), http.MethodPost, rc.path, mustJSON(t, body), "")
			msg := errorBody(t, w, http.StatusBadRequest, "invalid_argument")
			if !strings.Contains(msg, "bogus_field") {
				t.Errorf("message %q does not name the unknown field", msg)
			}
			if got := f.last(rc.path); got != nil || f.shutdowns != 0 {
				t.Errorf("service was called with %#v", got)
			}
		})
	}
}

func TestRoutesRejectOversizedBody(t *testing.T) {
	big := mustJSON(t, map[string]string{"name": strings.Repeat("x", MaxBodyBytes)})
	for _, rc := range routeCases {
		t.Run(rc.path, func(t *testing.T) {
			f := &fakes{}
			w := do(t, f.services(), http.MethodPost, rc.path, big, "")
			msg := errorBody(t, w, http.StatusRequestEntityTooLarge, "invalid_argument")
			if !strings.Contains(msg, "larger than") {
				t.Errorf("message %q does not say the body is too large", msg)
			}
			if got := f.last(rc.path); got != nil {
				t.Errorf("service was called with %#v", got)
			}
		})
	}
}

func TestBodyAtTheLimitIsAccepted(t *testing.T) {
	body := append([]byte(`{"name":"k"}`), bytes.Repeat([]byte(" "), MaxBodyBytes-12)...)
	if len(body) != MaxBodyBytes {
		t.Fatalf("body is %d bytes", len(body))
	}
	f := &fakes{}
	if w := do(t, f.services(), http.MethodPost, "/v1/kernel/show", body, ""); w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
}

func TestRoutesRequireFields(t *testing.T) {
	for _, rc := range routeCases {
		for _, field := range rc.required {
			for _, missingBody := range []map[string]any{without(rc.body, field), withValue(rc.body, field, "  ")} {
				t.Run(rc.path+"/"+field, func(t *testing.T) {
					f := &fakes{}
					w := do(t, f.services(), http.MethodPost, rc.path, mustJSON(t, missingBody), "")
					msg := errorBody(t, w, http.StatusBadRequest, "invalid_argument")
					if msg != field+" is required" {
						t.Errorf("message %q, want %q", msg, field+" is required")
					}
					if got := f.last(rc.path); got != nil {
						t.Errorf("service was called with %#v", got)
					}
				})
			}
		}
	}
}

func withValue(m map[string]any, key string, v any) map[string]any {
	out := without(m, key)
	out[key] = v
	return out
}

func TestRoutesWithoutServiceAnswer501(t *testing.T) {
	for _, rc := range routeCases {
		if rc.capab == "" {
			continue
		}
		t.Run(rc.path, func(t *testing.T) {
			w := do(t, Services{}, http.MethodPost, rc.path, mustJSON(t, rc.body), "")
			msg := errorBody(t, w, http.StatusNotImplemented, "not_implemented")
			if !strings.Contains(msg, rc.capab) {
				t.Errorf("message %q does not name the capability %q", msg, rc.capab)
			}
		})
	}
}

func TestPingNeedsNoService(t *testing.T) {
	w := do(t, Services{}, http.MethodGet, "/v1/ping", nil, "")
	var res api.PingResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || w.Code != http.StatusOK {
		t.Fatalf("status %d, %v: %s", w.Code, err, w.Body)
	}
	if res.Status != "ok" || res.PID <= 0 || res.Version == "" {
		t.Errorf("ping result %+v", res)
	}
}

func TestAPIDocListsEveryRoute(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatalf("docs/api.md: %v", err)
	}
	for _, rc := range routeCases {
		if !bytes.Contains(doc, []byte("`"+rc.path+"`")) {
			t.Errorf("docs/api.md does not document %s", rc.path)
		}
		if rc.get && !bytes.Contains(doc, []byte("`"+rc.path+"` (GET)")) {
			t.Errorf("docs/api.md does not say %s answers GET", rc.path)
		}
	}
}
