package guest

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"banger/internal/api"
)

// fakeResolver knows VMs by name; a name missing is not running.
type fakeResolver struct {
	vms  map[string]Target
	keys map[string][]string
}

func (f *fakeResolver) Running(_ context.Context, ref string) (Target, error) {
	t, ok := f.vms[ref]
	if !ok {
		return Target{Name: ref}, api.Errorf(api.ErrConflict, "vm %q is stopped", ref)
	}
	if t.Paused {
		return t, api.Errorf(api.ErrConflict, "vm %q is paused: host disk full", ref)
	}
	return t, nil
}

func (f *fakeResolver) RememberKey(_ context.Context, id, line string) error {
	f.keys[id] = append(f.keys[id], line)
	return nil
}

func newTestService(t *testing.T) (*Service, *fakeResolver, *guestServer) {
	g := startGuest(t)
	r := &fakeResolver{keys: map[string][]string{}, vms: map[string]Target{
		"web":  {ID: "web-id", Name: "web", Addr: g.addr, HostKey: g.hostPub, GuestIP: "192.0.2.7", DNSName: "web.vm"},
		"user": {ID: "user-id", Name: "user", Addr: g.addr, HostKey: g.hostPub, Unreachable: "user-mode networking"},
		"full": {ID: "full-id", Name: "full", Paused: true},
	}}
	return NewService(r, g.signer), r, g
}

func TestServiceHealth(t *testing.T) {
	s, _, _ := newTestService(t)
	res, err := s.Health(testCtx(t), "web")
	if err != nil || !res.Healthy {
		t.Fatalf("health: %+v, %v", res, err)
	}
	clocks := 0
	for _, c := range res.Checks {
		if c.Name == "clock" {
			clocks++
		}
	}
	if clocks != 1 {
		t.Fatalf("want one clock check, got %d: %+v", clocks, res.Checks)
	}
	res, err = s.Health(testCtx(t), "full")
	if err != nil || res.Healthy || len(res.Checks) != 1 || !strings.Contains(res.Checks[0].Detail, "paused: host disk full") {
		t.Fatalf("health of a paused vm: %+v, %v", res, err)
	}
	if _, err := s.Health(testCtx(t), "gone"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("health of a stopped vm: %v", err)
	}
}

func TestServicePortsEndpoints(t *testing.T) {
	s, _, _ := newTestService(t)
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	find := func(ref string) api.VMPort {
		res, err := s.Ports(testCtx(t), ref)
		if err != nil {
			t.Fatalf("ports of %s: %v", ref, err)
		}
		for _, p := range res.Ports {
			if p.Port == port && p.Proto == "tcp" {
				return p
			}
		}
		t.Fatalf("ports of %s lack %d: %+v", ref, port, res.Ports)
		return api.VMPort{}
	}
	if p := find("web"); !strings.HasPrefix(p.Endpoint, "web.vm:") {
		t.Errorf("bridge endpoint: %q", p.Endpoint)
	}
	if p := find("user"); p.Endpoint != "(user-mode networking: not reachable from the host)" {
		t.Errorf("user-mode endpoint: %q", p.Endpoint)
	}
}

func TestServiceAuthorizeKey(t *testing.T) {
	s, r, g := newTestService(t)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(g.signer.PublicKey())))
	res, err := s.AuthorizeKey(testCtx(t), api.VMAuthorizeKeyParams{IDOrName: "web", PublicKey: key + " me@host"})
	if err != nil || res.Name != "web" || res.HostKey != g.hostPub || res.Port == 0 {
		t.Fatalf("authorize key: %+v, %v", res, err)
	}
	if len(r.keys["web-id"]) != 1 || !SameKey(r.keys["web-id"][0], key) {
		t.Fatalf("key not recorded for future boots: %v", r.keys)
	}
	if _, err := s.AuthorizeKey(testCtx(t), api.VMAuthorizeKeyParams{IDOrName: "web", PublicKey: "not a key"}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("bad key: %v", err)
	}
}

func TestServicePing(t *testing.T) {
	s, _, _ := newTestService(t)
	if res, err := s.Ping(testCtx(t), "web"); err != nil || !res.Alive {
		t.Fatalf("ping: %+v, %v", res, err)
	}
	if _, err := s.Ping(testCtx(t), "gone"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("ping of a stopped vm: %v", err)
	}
}
