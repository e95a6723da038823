package mcp

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// sshTestServer is a minimal guest: exec (sh -c) and sftp over SSH on
// loopback, with connections that can be frozen like a VM that vanished.
type sshTestServer struct {
	addr    string
	hostKey string
	mu      sync.Mutex
	conns   []*freezableConn
}

// freezableConn stops reading and drops writes once frozen.
type freezableConn struct {
	net.Conn
	frozen atomic.Bool
	block  chan struct{}
}

func (c *freezableConn) Read(p []byte) (int, error) {
	if c.frozen.Load() {
		<-c.block
	}
	return c.Conn.Read(p)
}

func (c *freezableConn) Write(p []byte) (int, error) {
	if c.frozen.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (s *sshTestServer) freezeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.frozen.Store(true)
	}
}

func startSSHServer(t *testing.T) *sshTestServer {
	t.Helper()
	privPEM, pub, err := guest.GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	hk, err := ssh.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	conf := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
	conf.AddHostKey(hk)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshTestServer{addr: l.Addr().String(), hostKey: pub}
	var stop []chan struct{}
	t.Cleanup(func() {
		l.Close()
		for _, c := range stop {
			close(c)
		}
	})
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			fc := &freezableConn{Conn: nc, block: make(chan struct{})}
			s.mu.Lock()
			s.conns = append(s.conns, fc)
			stop = append(stop, fc.block)
			s.mu.Unlock()
			go serveSSH(fc, conf)
		}
	}()
	return s
}

func serveSSH(nc net.Conn, conf *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(nc, conf)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go func() {
			for req := range creqs {
				var arg struct{ Value string }
				ssh.Unmarshal(req.Payload, &arg)
				switch {
				case req.Type == "subsystem" && arg.Value == "sftp":
					req.Reply(true, nil)
					srv, _ := sftp.NewServer(ch)
					srv.Serve()
					ch.Close()
				case req.Type == "exec":
					req.Reply(true, nil)
					cmd := exec.Command("sh", "-c", arg.Value)
					cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
					cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
					code := 0
					if err := cmd.Run(); err != nil {
						code = 1
						if ee, ok := err.(*exec.ExitError); ok {
							code = ee.ExitCode()
						}
					}
					ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
					ch.Close()
				default:
					req.Reply(false, nil)
				}
			}
		}()
	}
}

// sshFakeDaemon says where the test server is and counts authorizations.
type sshFakeDaemon struct {
	srv        *sshTestServer
	id         atomic.Value
	authorized atomic.Int32
}

func (d *sshFakeDaemon) VMShow(_ context.Context, ref string) (model.VMRecord, error) {
	if ref != "dev" {
		return model.VMRecord{}, api.Errorf(api.ErrNotFound, "vm %q not found", ref)
	}
	return model.VMRecord{ID: d.id.Load().(string), Name: "dev", State: model.VMRunning}, nil
}

func (d *sshFakeDaemon) VMAuthorizeKey(_ context.Context, p api.VMAuthorizeKeyParams) (api.VMAuthorizeKeyResult, error) {
	d.authorized.Add(1)
	host, port, _ := net.SplitHostPort(d.srv.addr)
	var n int
	for _, c := range port {
		n = n*10 + int(c-'0')
	}
	return api.VMAuthorizeKeyResult{Name: "dev", Host: host, Port: n, HostKey: d.srv.hostKey}, nil
}

func TestSSHGuests(t *testing.T) {
	srv := startSSHServer(t)
	d := &sshFakeDaemon{srv: srv}
	d.id.Store("id-1")
	keyDir := t.TempDir()
	gs := NewSSHGuests(d, keyDir)
	defer gs.Close()
	ctx := context.Background()

	g, err := gs.Open(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(keyDir, "id_ed25519")); err != nil {
		t.Errorf("the user's banger key was not created: %v", err)
	}
	p := filepath.Join(t.TempDir(), "sub", "f.txt")
	if err := g.WriteFile(p, []byte("hello sftp\n"), 0o640, true); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("written file: %v %v", st, err)
	}
	data, size, err := g.ReadFile(p, 6, 100)
	if err != nil || string(data) != "sftp\n" || size != 11 {
		t.Errorf("ReadFile from 6: %q %d %v", data, size, err)
	}
	var out bytes.Buffer
	if code, err := g.Run(ctx, "cat "+p+"; exit 4", &out, nil); err != nil || code != 4 || out.String() != "hello sftp\n" {
		t.Errorf("Run: %d %v %q", code, err, out.String())
	}

	// The connection is kept while the VM keeps its id.
	if _, err := gs.Open(ctx, "dev"); err != nil || d.authorized.Load() != 1 {
		t.Errorf("second Open: %v, %d authorizations (want the cached connection)", err, d.authorized.Load())
	}
	d.id.Store("id-2") // deleted and re-created under the same name
	if _, err := gs.Open(ctx, "dev"); err != nil || d.authorized.Load() != 2 {
		t.Errorf("Open after a new id: %v, %d authorizations (want a new connection)", err, d.authorized.Load())
	}
	if _, err := gs.Open(ctx, "other"); err == nil || err.Error() != `vm "other" not found` {
		t.Errorf("unknown vm: %v", err)
	}

	// A guest that stops answering: the next Open redials, and dropping
	// the dead connection does not wait for it.
	srv.freezeAll()
	g, err = gs.Open(ctx, "dev")
	if err != nil || d.authorized.Load() != 3 {
		t.Fatalf("Open of a frozen guest: %v, %d authorizations (want a redial)", err, d.authorized.Load())
	}
	out.Reset()
	if code, err := g.Run(ctx, "echo again", &out, nil); err != nil || code != 0 || out.String() != "again\n" {
		t.Errorf("Run after redial: %d %v %q", code, err, out.String())
	}
	srv.freezeAll()
	gs.Forget("id-2") // by id; must return although the guest is silent
	if _, err := gs.Open(ctx, "dev"); err != nil || d.authorized.Load() != 4 {
		t.Errorf("Open after Forget: %v, %d authorizations", err, d.authorized.Load())
	}
}
