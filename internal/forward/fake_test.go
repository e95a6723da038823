package forward

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"
	"banger/internal/network"
)

// fakeAgent is an SSH server playing the guest agent: direct-tcpip
// channels connect on the host's loopback (standing in for the guest's),
// and the watch subsystem sends the snapshots pushed to it.
type fakeAgent struct {
	addr    string
	hostKey string
	snaps   chan proto.ListenSnapshot
	opened  chan string // direct-tcpip targets, in order
}

func startFakeAgent(t *testing.T, client ssh.PublicKey) *fakeAgent {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hs, _ := ssh.NewSignerFromKey(priv)
	conf := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) != string(client.Marshal()) {
			return nil, errors.New("no")
		}
		return nil, nil
	}}
	conf.AddHostKey(hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	a := &fakeAgent{addr: ln.Addr().String(), snaps: make(chan proto.ListenSnapshot, 16), opened: make(chan string, 4096),
		hostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hs.PublicKey())))}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go a.serve(nc, conf)
		}
	}()
	return a
}

func (a *fakeAgent) serve(nc net.Conn, conf *ssh.ServerConfig) {
	defer nc.Close()
	_, chans, reqs, err := ssh.NewServerConn(nc, conf)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		switch nch.ChannelType() {
		case "direct-tcpip":
			var req struct {
				Host       string
				Port       uint32
				OriginHost string
				OriginPort uint32
			}
			ssh.Unmarshal(nch.ExtraData(), &req)
			target := net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port)))
			a.opened <- target
			c, err := net.Dial("tcp", target)
			if err != nil {
				nch.Reject(ssh.ConnectionFailed, err.Error())
				continue
			}
			ch, creqs, err := nch.Accept()
			if err != nil {
				c.Close()
				continue
			}
			go ssh.DiscardRequests(creqs)
			go pipe(c, chanConn{ch})
		case "session":
			ch, creqs, err := nch.Accept()
			if err != nil {
				continue
			}
			go func() {
				for req := range creqs {
					ok := req.Type == "subsystem" && string(req.Payload[4:]) == proto.WatchSubsystem
					req.Reply(ok, nil)
					if ok {
						go func() {
							enc := json.NewEncoder(ch)
							for s := range a.snaps {
								if enc.Encode(s) != nil {
									return
								}
							}
						}()
					}
				}
			}()
		default:
			nch.Reject(ssh.UnknownChannelType, "no")
		}
	}
}

// chanConn makes an ssh.Channel a net.Conn for pipe.
type chanConn struct{ ssh.Channel }

func (chanConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (chanConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (chanConn) SetDeadline(time.Time) error      { return nil }
func (chanConn) SetReadDeadline(time.Time) error  { return nil }
func (chanConn) SetWriteDeadline(time.Time) error { return nil }
func (c chanConn) CloseWrite() error              { return c.Channel.CloseWrite() }
func (c chanConn) Read(b []byte) (int, error)     { return c.Channel.Read(b) }
func (c chanConn) Write(b []byte) (int, error)    { return c.Channel.Write(b) }
func (c chanConn) Close() error                   { return c.Channel.Close() }

var _ io.ReadWriteCloser = chanConn{}

// fakeVMs is a store of running VMs.
type fakeVMs struct {
	mu  sync.Mutex
	vms map[string]model.VMRecord
}

func (f *fakeVMs) GetVM(_ context.Context, ref string) (model.VMRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.vms {
		if v.ID == ref || v.Name == ref {
			return v, nil
		}
	}
	return model.VMRecord{}, api.Errorf(api.ErrNotFound, "vm %q not found", ref)
}

func (f *fakeVMs) ListVMs(context.Context) ([]model.VMRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []model.VMRecord
	for _, v := range f.vms {
		out = append(out, v)
	}
	return out, nil
}

func (f *fakeVMs) put(v model.VMRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vms[v.ID] = v
}

// fakeRules records the owner rules; check runs on every Set.
type fakeRules struct {
	mu    sync.Mutex
	last  []network.PortOwner
	check func([]network.PortOwner)
}

func (r *fakeRules) Set(o []network.PortOwner) error {
	if r.check != nil {
		r.check(o)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = append([]network.PortOwner(nil), o...)
	return nil
}

func (r *fakeRules) owners() []network.PortOwner {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]network.PortOwner(nil), r.last...)
}

// rig is a manager over fakes with agents per VM.
type rig struct {
	t      *testing.T
	vms    *fakeVMs
	rules  *fakeRules
	signer ssh.Signer
	agents map[string]*fakeAgent
	m      *Manager
}

func newRig(t *testing.T) *rig {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	r := &rig{t: t, vms: &fakeVMs{vms: map[string]model.VMRecord{}}, rules: &fakeRules{}, signer: signer, agents: map[string]*fakeAgent{}}
	r.m = r.manager()
	return r
}

func (r *rig) manager() *Manager {
	dial := func(ctx context.Context, vm model.VMRecord) (*guest.Client, error) {
		return guest.Dial(ctx, r.agents[vm.ID].addr, r.signer, vm.SSHHostKey)
	}
	m := New(context.Background(), r.vms, r.rules, dial, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.t.Cleanup(m.Close)
	return m
}

// vm adds a running VM with its own agent.
func (r *rig) vm(name string, owner int) model.VMRecord {
	a := startFakeAgent(r.t, r.signer.PublicKey())
	now := time.Now()
	v := model.VMRecord{ID: "id-" + name, Name: name, State: model.VMRunning, OwnerUID: owner, Dir: r.t.TempDir(),
		SSHHostKey: a.hostKey, PID: 42, StartedAt: &now}
	r.agents[v.ID] = a
	r.vms.put(v)
	return v
}

// freePort returns a loopback port free right now.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
