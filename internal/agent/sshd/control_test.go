package sshd

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"banger/internal/agent/proto"
	"banger/internal/guest"
)

func TestAgentReidentify(t *testing.T) {
	oldPEM, _, err := guest.GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	newPEM, newPub, err := guest.GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	oldSigner, _ := ssh.ParsePrivateKey(oldPEM)
	var applied []proto.Identity
	fail := false
	s := newTestAgent(t, Config{Reidentify: func(id proto.Identity) error {
		if fail {
			return errors.New("network: set mac: operation not permitted")
		}
		applied = append(applied, id)
		return nil
	}})
	s.hostKey = newSwapSigner(oldSigner)
	var clock []time.Time
	var seeded [][]byte
	s.sys.setClock = func(t time.Time) error { clock = append(clock, t); return nil }
	s.sys.reseedRNG = func(e []byte) error { seeded = append(seeded, e); return nil }

	id := proto.Identity{Hostname: "kid-1", MAC: "02:00:00:00:00:02", Address: "10.0.0.3/24", Gateway: "10.0.0.1",
		HostKey: string(newPEM), TimeUnixNano: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), Entropy: bytes.Repeat([]byte{9}, 64)}
	line := func(id proto.Identity) string {
		b, _ := json.Marshal(proto.Request{Op: proto.OpReidentify, Identity: &id})
		return string(b)
	}
	badKey := id
	badKey.HostKey = "not a key"
	noEntropy := id
	noEntropy.Entropy = nil
	resps := agentExchange(t, s, line(badKey), line(noEntropy), `{"op":"reidentify"}`)
	for i, r := range resps {
		if r.OK {
			t.Errorf("bad reidentify %d accepted", i)
		}
	}
	if len(applied) != 0 || len(seeded) != 0 || len(clock) != 0 || !bytes.Equal(s.hostKey.PublicKey().Marshal(), oldSigner.PublicKey().Marshal()) {
		t.Fatalf("a refused reidentify changed something: %v %v %v", applied, seeded, clock)
	}
	resps = agentExchange(t, s, line(id))
	if !resps[0].OK || len(applied) != 1 || applied[0].Hostname != "kid-1" || len(seeded) != 1 || len(clock) != 1 {
		t.Fatalf("reidentify: %+v; applied %v, seeded %d, clock %v", resps[0], applied, len(seeded), clock)
	}
	if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostKey.PublicKey()))); got != strings.TrimSpace(newPub) {
		t.Fatalf("host key after reidentify: %s, want %s", got, newPub)
	}
	// A failure to apply the identity keeps the old host key.
	fail = true
	other, _, _ := guest.GenerateHostKey()
	id.HostKey = string(other)
	if resps = agentExchange(t, s, line(id)); resps[0].OK || !strings.Contains(resps[0].Error, "set mac") {
		t.Fatalf("reidentify whose network change fails: %+v", resps[0])
	}
	if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostKey.PublicKey()))); got != strings.TrimSpace(newPub) {
		t.Fatalf("host key changed by a failed reidentify")
	}
}
