package sshd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"banger/internal/agent/proto"
)

func TestAgentReseed(t *testing.T) {
	s := newTestAgent(t, Config{})
	var got [][]byte
	s.sys.reseedRNG = func(e []byte) error {
		got = append(got, e)
		return nil
	}
	entropy := bytes.Repeat([]byte{7}, 64)
	ok, _ := json.Marshal(proto.Request{Op: proto.OpReseed, Entropy: entropy})
	short, _ := json.Marshal(proto.Request{Op: proto.OpReseed, Entropy: entropy[:8]})
	long, _ := json.Marshal(proto.Request{Op: proto.OpReseed, Entropy: bytes.Repeat([]byte{1}, proto.MaxEntropy+1)})
	resps := agentExchange(t, s, string(ok), string(short), string(long), `{"op":"reseed"}`)
	if !resps[0].OK || len(got) != 1 || !bytes.Equal(got[0], entropy) {
		t.Fatalf("reseed: %+v; rng got %v", resps[0], got)
	}
	for i, r := range resps[1:] {
		if r.OK || !strings.Contains(r.Error, "entropy must be") {
			t.Errorf("reseed with bad entropy (request %d): %+v", i+1, r)
		}
	}
	if len(got) != 1 {
		t.Errorf("the rng was fed by a refused request: %d times", len(got))
	}
}
