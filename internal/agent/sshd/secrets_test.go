package sshd

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"banger/internal/agent/proto"
	"banger/internal/bootcfg"
	"banger/internal/guest"
)

var testSecrets = []bootcfg.Secret{
	{Name: "github-token", Env: "GITHUB_TOKEN", Placeholder: "banger-secret-github-token-0123456789abcdef01234567"},
	{Name: "npm", Env: "NPM_TOKEN", Placeholder: "banger-secret-npm-aaaaaaaaaaaaaaaaaaaaaaaa"},
}

// trustEnv is what initsys adds to Config.Env when the VM has a CA.
var trustEnv = []string{
	"SSL_CERT_FILE=/run/banger/ca-bundle.crt",
	"REQUESTS_CA_BUNDLE=/run/banger/ca-bundle.crt",
	"NODE_EXTRA_CA_CERTS=/run/banger/ca.crt",
}

func envLines(t *testing.T, ts *testServer) []string {
	t.Helper()
	res := runGo(t, ts, "", "env")
	if res.code != 0 {
		t.Fatalf("env: %+v", res)
	}
	return strings.Split(strings.TrimSpace(res.stdout), "\n")
}

func TestSessionEnvHasSecretsAndCA(t *testing.T) {
	var mu sync.Mutex
	var applied []proto.Identity
	ts := startServerConfig(t, func(c *Config) {
		c.Env = append(c.Env, trustEnv...)
		c.Secrets = testSecrets
		c.Reidentify = func(id proto.Identity) error {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, id)
			return nil
		}
	}, func(s *sysPaths) {
		s.setClock = func(time.Time) error { return nil }
		s.reseedRNG = func([]byte) error { return nil }
	})
	env := envLines(t, ts)
	for _, want := range append([]string{
		"GITHUB_TOKEN=" + testSecrets[0].Placeholder,
		"NPM_TOKEN=" + testSecrets[1].Placeholder,
		"BANGER_TEST_ENV=from-config",
	}, trustEnv...) {
		if !slices.Contains(env, want) {
			t.Errorf("session env lacks %s:\n%s", want, strings.Join(env, "\n"))
		}
	}

	// A clone's reidentify swaps the placeholders for new sessions.
	hostKey, _, err := guest.GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	clone := []bootcfg.Secret{{Name: "github-token", Env: "GITHUB_TOKEN", Placeholder: "banger-secret-github-token-fedcba9876543210fedcba98"}}
	id := proto.Identity{Hostname: "kid", MAC: "02:00:00:00:00:02", Address: "10.0.0.3/24", HostKey: string(hostKey),
		TimeUnixNano: time.Now().UnixNano(), Entropy: bytes.Repeat([]byte{7}, 64), Secrets: clone}
	if resp := agentCall(t, ts, proto.Request{Op: proto.OpReidentify, Identity: &id}); !resp.OK {
		t.Fatalf("reidentify: %+v", resp)
	}
	mu.Lock()
	if len(applied) != 1 || !slices.Equal(applied[0].Secrets, clone) {
		t.Fatalf("Reidentify got %+v", applied)
	}
	mu.Unlock()
	// The client still trusts the old host key: use the new one from here.
	ts.hostPub = mustParse(t, hostKey).PublicKey()
	env = envLines(t, ts)
	if !slices.Contains(env, "GITHUB_TOKEN="+clone[0].Placeholder) {
		t.Errorf("after reidentify the session env lacks the new placeholder:\n%s", strings.Join(env, "\n"))
	}
	for _, kv := range env {
		if strings.Contains(kv, testSecrets[0].Placeholder) || strings.HasPrefix(kv, "NPM_TOKEN=") {
			t.Errorf("old placeholder still in the env: %s", kv)
		}
	}
	if !slices.Contains(env, trustEnv[0]) {
		t.Errorf("CA variables gone after reidentify")
	}
}

func TestReidentifyRefusesBadSecrets(t *testing.T) {
	applied := 0
	s := newTestAgent(t, Config{Secrets: testSecrets, Reidentify: func(proto.Identity) error { applied++; return nil }})
	s.sys.setClock = func(time.Time) error { return nil }
	s.sys.reseedRNG = func([]byte) error { return nil }
	hostKey, _, _ := guest.GenerateHostKey()
	s.hostKey = newSwapSigner(mustParse(t, hostKey))
	id := proto.Identity{Hostname: "kid", HostKey: string(hostKey), Entropy: bytes.Repeat([]byte{7}, 64), TimeUnixNano: time.Now().UnixNano(),
		Secrets: []bootcfg.Secret{{Name: "x", Env: "PATH", Placeholder: "banger-secret-x-aaaaaaaaaaaaaaaaaaaaaaaa"}}}
	line, _ := json.Marshal(proto.Request{Op: proto.OpReidentify, Identity: &id})
	resps := agentExchange(t, s, string(line))
	if resps[0].OK || !strings.Contains(resps[0].Error, "reserved") || applied != 0 {
		t.Fatalf("reidentify with a bad secret: %+v, applied %d", resps[0], applied)
	}
	if got := s.secretEnv(); !slices.Equal(got, []string{"GITHUB_TOKEN=" + testSecrets[0].Placeholder, "NPM_TOKEN=" + testSecrets[1].Placeholder}) {
		t.Fatalf("secret env after a refused reidentify: %v", got)
	}
	// Without secrets the old placeholders stay.
	id.Secrets = nil
	line, _ = json.Marshal(proto.Request{Op: proto.OpReidentify, Identity: &id})
	if resps = agentExchange(t, s, string(line)); !resps[0].OK || len(s.secretEnv()) != 2 {
		t.Fatalf("reidentify without secrets: %+v, env %v", resps[0], s.secretEnv())
	}
}

// agentCall sends one request on the agent subsystem over SSH.
func agentCall(t *testing.T, ts *testServer, req proto.Request) proto.Response {
	t.Helper()
	sess, err := ts.goClient(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem(proto.Subsystem); err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(req)
	in.Write(append(line, '\n'))
	in.Close()
	data, _ := io.ReadAll(out)
	var resp proto.Response
	if err := json.Unmarshal(bytes.TrimSpace(data), &resp); err != nil {
		t.Fatalf("agent answer %q: %v", data, err)
	}
	return resp
}

func mustParse(t *testing.T, pemKey []byte) ssh.Signer {
	t.Helper()
	s, err := ssh.ParsePrivateKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSetSecretsLive(t *testing.T) {
	var mu sync.Mutex
	var got []proto.SecretsUpdate
	var fail atomic.Bool
	ts := startServerConfig(t, func(c *Config) {
		c.SetSecrets = func(u proto.SecretsUpdate) ([]string, error) {
			if fail.Load() {
				return nil, errors.New("disk full")
			}
			mu.Lock()
			defer mu.Unlock()
			got = append(got, u)
			return trustEnv, nil
		}
	}, nil)
	env := envLines(t, ts)
	if slices.Contains(env, trustEnv[0]) || slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GITHUB_TOKEN=") }) {
		t.Fatalf("secrets before any were set:\n%s", strings.Join(env, "\n"))
	}
	u := proto.SecretsUpdate{Secrets: testSecrets[:1], CACerts: []string{testCAPEM(t)}}
	if resp := agentCall(t, ts, proto.Request{Op: proto.OpSecrets, Secrets: &u}); !resp.OK {
		t.Fatalf("secrets: %+v", resp)
	}
	mu.Lock()
	calls := len(got)
	if calls != 1 || !slices.Equal(got[0].Secrets, testSecrets[:1]) || len(got[0].CACerts) != 1 {
		t.Fatalf("SetSecrets got %+v", got)
	}
	mu.Unlock()
	env = envLines(t, ts)
	for _, want := range append([]string{"GITHUB_TOKEN=" + testSecrets[0].Placeholder}, trustEnv...) {
		if !slices.Contains(env, want) {
			t.Errorf("after the secrets op the session env lacks %s:\n%s", want, strings.Join(env, "\n"))
		}
	}
	// A bad set reaches neither the hook nor the sessions.
	bad := proto.SecretsUpdate{Secrets: []bootcfg.Secret{{Name: "x", Env: "PATH", Placeholder: "banger-secret-x-aaaaaaaaaaaaaaaaaaaaaaaa"}}}
	if resp := agentCall(t, ts, proto.Request{Op: proto.OpSecrets, Secrets: &bad}); resp.OK || !strings.Contains(resp.Error, "reserved") {
		t.Fatalf("bad secrets: %+v", resp)
	}
	mu.Lock()
	calls = len(got)
	mu.Unlock()
	if calls != 1 {
		t.Fatalf("a bad set reached the hook (%d calls)", calls)
	}
	// The hook failing leaves the sessions' placeholders as they were.
	fail.Store(true)
	other := proto.SecretsUpdate{Secrets: testSecrets[1:]}
	if resp := agentCall(t, ts, proto.Request{Op: proto.OpSecrets, Secrets: &other}); resp.OK || !strings.Contains(resp.Error, "disk full") {
		t.Fatalf("failing hook: %+v", resp)
	}
	if env = envLines(t, ts); !slices.Contains(env, "GITHUB_TOKEN="+testSecrets[0].Placeholder) {
		t.Fatalf("placeholder lost after a failed set:\n%s", strings.Join(env, "\n"))
	}
	// Removing every secret: none in new sessions; the CA stays trusted.
	fail.Store(false)
	if resp := agentCall(t, ts, proto.Request{Op: proto.OpSecrets, Secrets: &proto.SecretsUpdate{}}); !resp.OK {
		t.Fatalf("no secrets: %+v", resp)
	}
	env = envLines(t, ts)
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GITHUB_TOKEN=") }) || !slices.Contains(env, trustEnv[0]) {
		t.Fatalf("after removing every secret:\n%s", strings.Join(env, "\n"))
	}
	// No request body: refused.
	if resp := agentCall(t, ts, proto.Request{Op: proto.OpSecrets}); resp.OK {
		t.Fatal("secrets op without secrets accepted")
	}
}

func TestSetSecretsUnsupported(t *testing.T) {
	s := newTestAgent(t, Config{})
	line, _ := json.Marshal(proto.Request{Op: proto.OpSecrets, Secrets: &proto.SecretsUpdate{Secrets: testSecrets}})
	if resps := agentExchange(t, s, string(line)); resps[0].OK || !strings.Contains(resps[0].Error, "cannot change its secrets") {
		t.Fatalf("%+v", resps[0])
	}
	if len(s.secretEnv()) != 0 {
		t.Fatalf("env %v", s.secretEnv())
	}
}

// testCAPEM is a PEM certificate block as the host sends (the agent checks
// its framing; the trust stores are initsys's).
func testCAPEM(t *testing.T) string {
	t.Helper()
	return "-----BEGIN CERTIFICATE-----\nMAoGCCqGSM49BAMC\n-----END CERTIFICATE-----\n"
}
