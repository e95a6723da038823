package sshd

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
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
