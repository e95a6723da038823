package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/egress"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/secrets"
	"banger/internal/server"
	"banger/internal/store"
)

const testValue = "tok-DAEMON-SECRET-VALUE-7"

// secretsDaemon is the store, vault and secrets service of a daemon in a
// temporary state folder, logging into logs.
func secretsDaemon(t testing.TB, logs *bytes.Buffer) (*store.Store, *secrets.Service, paths.State) {
	t.Helper()
	state := paths.State{Dir: t.TempDir()}
	st, err := store.Open(context.Background(), state.DB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := &Daemon{state: state, store: st, log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	svc, err := d.openSecrets()
	if err != nil {
		t.Fatal(err)
	}
	return st, svc, state
}

func as(uid int) context.Context {
	return authz.WithCaller(context.Background(), authz.Caller{UID: uid, GID: uid})
}

// TestAPINeverReturnsTheValue drives the secret routes through the real
// server, door and service: no response body, error or log line holds
// the value, and the vault holds it only encrypted.
func TestAPINeverReturnsTheValue(t *testing.T) {
	var logs bytes.Buffer
	st, svc, state := secretsDaemon(t, &logs)
	srv := server.New(server.Services{Secrets: svc, Owners: owners{st, svc}}, slog.New(slog.NewTextHandler(&logs, nil)))
	call := func(uid int, path string, body any) *httptest.ResponseRecorder {
		raw, _ := json.Marshal(body)
		req := httptest.NewRequest(http.MethodPost, "http://banger"+path, bytes.NewReader(raw))
		req = req.WithContext(authz.WithCaller(req.Context(), authz.Caller{UID: uid, GID: uid}))
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		return w
	}
	var bodies []string
	add := api.SecretAddParams{Name: "gh", Hosts: []string{"API.github.com", "raw.githubusercontent.com"}, Header: "Authorization: Bearer {}", Value: []byte(testValue)}
	steps := []struct {
		uid    int
		path   string
		body   any
		status int
	}{
		{1001, "/v1/secret/add", add, 200},
		{1001, "/v1/secret/add", add, 409},
		{1001, "/v1/secret/list", nil, 200},
		{1001, "/v1/secret/show", api.SecretRefParams{Name: "gh"}, 200},
		{1002, "/v1/secret/show", api.SecretRefParams{Name: "gh"}, 404},
		{1002, "/v1/secret/list", nil, 200},
		{0, "/v1/secret/show", api.SecretRefParams{Name: "gh"}, 200},
		{1001, "/v1/secret/add", api.SecretAddParams{Name: "bad", Hosts: []string{"10.0.0.1"}, Value: []byte(testValue)}, 400},
		{1001, "/v1/secret/add", api.SecretAddParams{Name: "bad", Hosts: []string{"a.example.com"}, Value: []byte(testValue + "\n")}, 400},
		{1001, "/v1/secret/add", api.SecretAddParams{Name: "bad", Hosts: []string{"a.example.com"}}, 400},
	}
	for _, s := range steps {
		w := call(s.uid, s.path, s.body)
		if w.Code != s.status {
			t.Errorf("%s as %d: status %d, want %d: %s", s.path, s.uid, w.Code, s.status, w.Body)
		}
		bodies = append(bodies, w.Body.String())
	}
	var shown api.SecretShowResult
	json.Unmarshal([]byte(bodies[3]), &shown)
	if shown.Secret.Name != "gh" || shown.Secret.OwnerUID != 1001 || strings.Join(shown.Secret.Hosts, " ") != "api.github.com raw.githubusercontent.com" {
		t.Errorf("show: %s", bodies[3])
	}
	var bobs api.SecretListResult
	json.Unmarshal([]byte(bodies[5]), &bobs)
	if len(bobs.Secrets) != 0 {
		t.Errorf("bob lists alice's secret: %s", bodies[5])
	}
	// By id, bob is refused at the door (it is alice's).
	if w := call(1002, "/v1/secret/show", api.SecretRefParams{Name: shown.Secret.ID}); w.Code != 403 {
		t.Errorf("bob shows alice's secret by id: %d %s", w.Code, w.Body)
	}
	// Bound: rm refused, naming the VM.
	st.InsertVM(context.Background(), model.VMRecord{ID: "v1", Name: "box", OwnerUID: 1001,
		Secrets: []model.SecretBinding{{Name: "gh", Env: "GH", Placeholder: "banger-secret-gh-0", SecretID: shown.Secret.ID}}})
	w := call(1001, "/v1/secret/rm", api.SecretRefParams{Name: "gh"})
	if w.Code != 409 || !strings.Contains(w.Body.String(), "bound to vm box") {
		t.Errorf("rm while bound: %d %s", w.Code, w.Body)
	}
	bodies = append(bodies, w.Body.String())
	for i, b := range bodies {
		if strings.Contains(b, testValue) {
			t.Errorf("response %d holds the value: %s", i, b)
		}
	}
	if strings.Contains(logs.String(), testValue) {
		t.Errorf("the log holds the value:\n%s", logs.String())
	}
	raw, err := os.ReadFile(filepath.Join(state.Secrets(), shown.Secret.ID+".enc"))
	if err != nil || bytes.Contains(raw, []byte(testValue)) {
		t.Errorf("vault file: %v (clear text: %v)", err, bytes.Contains(raw, []byte(testValue)))
	}
	dbRaw, _ := os.ReadFile(state.DB())
	wal, _ := os.ReadFile(state.DB() + "-wal")
	if bytes.Contains(dbRaw, []byte(testValue)) || bytes.Contains(wal, []byte(testValue)) {
		t.Error("the database holds the value")
	}
}

type denials struct {
	ip netip.Addr
	d  []egress.Denial
}

func (n *denials) RecordDenial(ip netip.Addr, d egress.Denial) (bool, int) {
	n.ip, n.d = ip, append(n.d, d)
	return true, 0
}

// TestSecretHookFeedsTheSubstituter: the hook gives a VM's bindings with
// values and modes, its CA only once its boot made one, and records
// denials by the VM's address.
func TestSecretHookFeedsTheSubstituter(t *testing.T) {
	var logs bytes.Buffer
	st, svc, state := secretsDaemon(t, &logs)
	sec, err := svc.Add(as(1001), api.SecretAddParams{Name: "git", Hosts: []string{"git.example.com"}, BasicUser: "x-access-token", PlainHTTP: true, Value: []byte(testValue)})
	if err != nil {
		t.Fatal(err)
	}
	vm := model.VMRecord{ID: "v1", Name: "box", OwnerUID: 1001, GuestIP: "172.30.0.5", Dir: state.VM("v1"),
		Secrets: []model.SecretBinding{{Name: "git", Env: "GIT", Placeholder: "banger-secret-git-aaaaaaaaaaaaaaaaaaaaaaaa", SecretID: sec.ID}}}
	st.InsertVM(context.Background(), vm)
	st.InsertVM(context.Background(), model.VMRecord{ID: "v2", Name: "plain"})
	h := newSecretHook(st, svc, slog.New(slog.DiscardHandler))
	subs := h.subs("v1")
	if len(subs) != 1 || string(subs[0].Value) != testValue || subs[0].Placeholder != vm.Secrets[0].Placeholder ||
		subs[0].BasicUser != "x-access-token" || !subs[0].PlainHTTP || subs[0].Hosts[0] != "git.example.com" {
		t.Fatalf("subs = %+v", subs)
	}
	if h.subs("v2") != nil || h.subs("gone") != nil {
		t.Fatal("subs for a VM without secrets")
	}
	if _, err := h.ca("v1"); err == nil {
		t.Fatal("a CA before the VM's boot made one")
	}
	if _, err := caPEM(filepath.Join(vm.Dir, paths.VMCA), vm.Name); err != nil {
		t.Fatal(err)
	}
	m, err := h.ca("v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Leaf("git.example.com"); err != nil {
		t.Fatal(err)
	}
	n := &denials{}
	sub := h.substituter(n)
	sub.Deny("v1", egress.Denial{Via: "secrets", Name: "evil.example.com", Reason: "placeholder"})
	if n.ip != netip.MustParseAddr("172.30.0.5") || len(n.d) != 1 || n.d[0].Name != "evil.example.com" {
		t.Fatalf("denial recorded as %v %+v", n.ip, n.d)
	}
}

// BenchmarkSecretHookSubs is the hook's cost per proxied connection: a VM
// without secrets (one record read) and one with a secret (record read,
// cached description lookup and value).
func BenchmarkSecretHookSubs(b *testing.B) {
	var logs bytes.Buffer
	st, svc, _ := secretsDaemon(b, &logs)
	sec, err := svc.Add(as(1001), api.SecretAddParams{Name: "gh", Hosts: []string{"api.example.com"}, Value: []byte(testValue)})
	if err != nil {
		b.Fatal(err)
	}
	st.InsertVM(context.Background(), model.VMRecord{ID: "v1", Name: "box", Secrets: []model.SecretBinding{{Name: "gh", Env: "GH", Placeholder: "banger-secret-gh-0", SecretID: sec.ID}}})
	st.InsertVM(context.Background(), model.VMRecord{ID: "v2", Name: "plain"})
	h := newSecretHook(st, svc, slog.New(slog.DiscardHandler))
	for _, vm := range []string{"v2", "v1"} {
		b.Run(vm, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				h.subs(vm)
			}
		})
	}
}
