package sshd

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/agent/proto"
)

func newTestAgent(t *testing.T, cfg Config) *server {
	t.Helper()
	return &server{cfg: cfg, log: slog.New(slog.DiscardHandler), keys: newKeySet(), sys: defaultSysPaths(), started: time.Now()}
}

// agentExchange sends request lines and returns the decoded responses.
func agentExchange(t *testing.T, s *server, lines ...string) []proto.Response {
	t.Helper()
	var out strings.Builder
	if _, err := s.serveAgent(strings.NewReader(strings.Join(lines, "\n")+"\n"), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var resps []proto.Response
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var r proto.Response
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("response %q: %v", sc.Text(), err)
		}
		resps = append(resps, r)
	}
	if len(resps) != len(lines) {
		t.Fatalf("%d responses for %d requests: %q", len(resps), len(lines), out.String())
	}
	return resps
}

func TestAgentProtocolErrors(t *testing.T) {
	s := newTestAgent(t, Config{})
	resps := agentExchange(t, s,
		`{"op":"ping"}`,
		`not json`,
		`{"op":"reboot-everything"}`,
		`{}`,
		`{"op":"authorize_key","key":"ssh-ed25519 garbage"}`,
		`{"op":"authorize_key"}`,
		`{"op":"poweroff"}`,
		`{"op":"ping"}`,
	)
	if !resps[0].OK || resps[0].Result != nil {
		t.Errorf("ping: %+v", resps[0])
	}
	wantErr := []string{"", "decode request", `unknown op "reboot-everything"`, "missing op", "authorize_key: parse authorized key", "missing key", "poweroff is not available"}
	for i := 1; i < len(wantErr); i++ {
		if resps[i].OK || !strings.Contains(resps[i].Error, wantErr[i]) {
			t.Errorf("request %d: %+v, want error containing %q", i, resps[i], wantErr[i])
		}
	}
	if !resps[7].OK {
		t.Errorf("ping after errors: %+v", resps[7])
	}
}

func TestAgentAuthorizeKeyAndPoweroff(t *testing.T) {
	powered := make(chan struct{})
	s := newTestAgent(t, Config{Poweroff: func() { close(powered) }})
	_, signer := newKeyPair(t)
	line := authorizedLine(signer.PublicKey())
	if s.keys.has(signer.PublicKey()) {
		t.Fatal("key authorized before the request")
	}
	req, _ := json.Marshal(proto.Request{Op: proto.OpAuthorizeKey, Key: line + " added@host"})
	resps := agentExchange(t, s, string(req), `{"op":"poweroff"}`)
	if !resps[0].OK || !s.keys.has(signer.PublicKey()) {
		t.Fatalf("authorize_key: %+v; key known: %v", resps[0], s.keys.has(signer.PublicKey()))
	}
	if !resps[1].OK {
		t.Fatalf("poweroff: %+v", resps[1])
	}
	select {
	case <-powered:
	case <-time.After(10 * time.Second):
		t.Fatal("Poweroff was not called")
	}
	_, other := newKeyPair(t)
	if s.keys.has(other.PublicKey()) {
		t.Fatal("an unrelated key is authorized")
	}
}

func TestAgentHealthAndDiskUsage(t *testing.T) {
	root := t.TempDir()
	work := filepath.Join(t.TempDir(), "work")
	os.Mkdir(work, 0o755)
	s := newTestAgent(t, Config{Disks: DiskPaths{Root: root, Work: work}})
	h := s.health()
	if !h.OK || len(h.Checks) != 4 {
		t.Fatalf("health: %+v", h)
	}
	if d := time.Since(time.Unix(0, h.TimeUnixNano)); d < 0 || d > time.Minute {
		t.Errorf("health time is %v away from now", d)
	}
	if e := time.Duration(h.ElapsedNanos); e <= 0 || e > time.Since(time.Unix(0, h.TimeUnixNano)) {
		t.Errorf("health elapsed %v", e)
	}
	if h.Uptime <= 0 {
		t.Errorf("uptime %v", h.Uptime)
	}
	for _, dir := range []string{root, work} {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("health left files in %s: %v", dir, entries)
		}
	}

	du, err := s.diskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if du.Root.Path != root || du.Root.SizeBytes == 0 || du.Root.UsedBytes > du.Root.SizeBytes || du.Work.Path != work {
		t.Errorf("disk usage: %+v", du)
	}

	os.Remove(work) // the work disk is gone: its check fails, the rest pass
	h = s.health()
	if h.OK {
		t.Fatalf("health OK with a missing work dir: %+v", h)
	}
	for _, c := range h.Checks {
		if c.OK == (c.Name == proto.CheckWorkWritable) {
			t.Errorf("check %+v", c)
		}
	}
	if _, err := s.diskUsage(); err == nil || !strings.Contains(err.Error(), work) {
		t.Errorf("disk usage of a missing dir: %v", err)
	}
}

func TestAgentSetTime(t *testing.T) {
	s := newTestAgent(t, Config{})
	var got []time.Time
	fail := false
	s.sys.setClock = func(t time.Time) error {
		if fail {
			return errors.New("set clock: operation not permitted")
		}
		got = append(got, t)
		return nil
	}
	want := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
	req, _ := json.Marshal(proto.Request{Op: proto.OpSetTime, TimeUnixNano: want.UnixNano()})
	resps := agentExchange(t, s, string(req), `{"op":"set_time"}`, `{"op":"set_time","time_unix_nano":1000000000}`)
	if !resps[0].OK || len(got) != 1 || !got[0].Equal(want) {
		t.Fatalf("set_time: %+v; clock set to %v, want %v", resps[0], got, want)
	}
	for i, r := range resps[1:] {
		if r.OK || !strings.Contains(r.Error, "refusing to set the clock") {
			t.Errorf("set_time without a sane time (request %d): %+v", i+1, r)
		}
	}
	if len(got) != 1 {
		t.Errorf("the clock was set by a refused request: %v", got)
	}
	fail = true
	resps = agentExchange(t, s, string(req))
	if resps[0].OK || !strings.Contains(resps[0].Error, "set_time: set clock: operation not permitted") {
		t.Errorf("set_time when the kernel refuses: %+v", resps[0])
	}
}
