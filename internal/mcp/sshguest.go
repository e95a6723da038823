package mcp

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/model"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// SSHGuests reaches guests the way 'banger vm exec' does: the user's banger
// key (~/.config/banger/id_ed25519), authorized in the guest by the daemon,
// and the guest's host key pinned from the daemon's answer. Connections are
// kept per VM and reused while the VM keeps its id.
type SSHGuests struct {
	daemon sshDaemon
	keyDir string

	mu     sync.Mutex
	signer ssh.Signer
	conns  map[string]*sshGuest // by VM name
}

// sshDaemon is what SSHGuests needs from the daemon.
type sshDaemon interface {
	VMShow(ctx context.Context, ref string) (model.VMRecord, error)
	VMAuthorizeKey(ctx context.Context, p api.VMAuthorizeKeyParams) (api.VMAuthorizeKeyResult, error)
}

// NewSSHGuests returns guest access through d with the key in keyDir
// (created on first use, like the CLI does).
func NewSSHGuests(d sshDaemon, keyDir string) *SSHGuests {
	return &SSHGuests{daemon: d, keyDir: keyDir, conns: map[string]*sshGuest{}}
}

type sshGuest struct {
	id   string
	ssh  *guest.Client
	sftp *sftp.Client
}

// Open asks the daemon for the VM first (so the daemon's owner rules apply
// on every call), then reuses a live connection to the same VM or dials.
func (g *SSHGuests) Open(ctx context.Context, vm string) (Guest, error) {
	rec, err := g.daemon.VMShow(ctx, vm)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	c := g.conns[rec.Name]
	g.mu.Unlock()
	if c != nil && c.id == rec.ID && rec.State == model.VMRunning && alive(c.ssh.SSH()) {
		return c, nil
	}
	g.Forget(rec.Name)
	c, err = g.dial(ctx, rec.Name, rec.ID)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	if old := g.conns[rec.Name]; old != nil {
		old.close()
	}
	g.conns[rec.Name] = c
	g.mu.Unlock()
	return c, nil
}

// Forget closes and drops the cached connection to vm (a name or an id).
func (g *SSHGuests) Forget(vm string) {
	g.mu.Lock()
	var drop []*sshGuest
	for name, c := range g.conns {
		if name == vm || c.id == vm {
			drop = append(drop, c)
			delete(g.conns, name)
		}
	}
	g.mu.Unlock()
	for _, c := range drop {
		c.close()
	}
}

// Close closes every connection.
func (g *SSHGuests) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for n, c := range g.conns {
		c.close()
		delete(g.conns, n)
	}
}

func (g *SSHGuests) loadSigner() (ssh.Signer, string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	keyPath := filepath.Join(g.keyDir, "id_ed25519")
	if g.signer == nil {
		s, err := guest.LoadOrCreateSigner(keyPath)
		if err != nil {
			return nil, "", fmt.Errorf("ssh key %s: %w", keyPath, err)
		}
		g.signer = s
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(g.signer.PublicKey()))) + " banger"
	if _, err := os.Stat(keyPath + ".pub"); err != nil {
		os.WriteFile(keyPath+".pub", []byte(pub+"\n"), 0o644)
	}
	return g.signer, pub, nil
}

func (g *SSHGuests) dial(ctx context.Context, name, id string) (*sshGuest, error) {
	signer, pub, err := g.loadSigner()
	if err != nil {
		return nil, err
	}
	res, err := g.daemon.VMAuthorizeKey(ctx, api.VMAuthorizeKeyParams{IDOrName: name, PublicKey: pub})
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := guest.Dial(dctx, net.JoinHostPort(res.Host, strconv.Itoa(res.Port)), signer, res.HostKey)
	if err != nil {
		return nil, err
	}
	sc, err := sftp.NewClient(c.SSH(), sftp.MaxPacket(32<<10), sftp.UseConcurrentWrites(true))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("open sftp in %s: %w", name, err)
	}
	return &sshGuest{id: id, ssh: c, sftp: sc}, nil
}

// alive sends a keepalive and waits briefly for any answer.
func alive(c *ssh.Client) bool {
	done := make(chan error, 1)
	go func() {
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err == nil
	case <-time.After(3 * time.Second):
		return false
	}
}

// close closes the SSH connection first: closing sftp first would wait for
// the guest to answer, forever when the VM is gone.
func (c *sshGuest) close() {
	c.ssh.Close()
	c.sftp.Close()
}

func (c *sshGuest) Run(ctx context.Context, cmd string, stdout, stderr io.Writer) (int, error) {
	return c.ssh.Run(ctx, cmd, nil, stdout, stderr)
}

func (c *sshGuest) Stat(p string) (fs.FileInfo, error) { return c.sftp.Stat(p) }

func (c *sshGuest) ReadDir(p string) ([]fs.FileInfo, error) { return c.sftp.ReadDir(p) }

func (c *sshGuest) ReadFile(p string, off, max int64) ([]byte, int64, error) {
	f, err := c.sftp.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if st.IsDir() {
		return nil, 0, fmt.Errorf("%s is a directory", p)
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return nil, 0, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, max))
	return data, st.Size(), err
}

func (c *sshGuest) WriteFile(p string, data []byte, mode fs.FileMode, mkdirs bool) error {
	dir := path.Dir(p)
	if mkdirs {
		if err := c.sftp.MkdirAll(dir); err != nil {
			return err
		}
	}
	if st, err := c.sftp.Stat(p); err == nil {
		if st.IsDir() {
			return fmt.Errorf("%s is a directory", p)
		}
		mode = st.Mode().Perm()
	}
	tmp := path.Join(dir, fmt.Sprintf(".%s.banger-%d.tmp", path.Base(p), time.Now().UnixNano()))
	f, err := c.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = c.sftp.Chmod(tmp, mode)
	}
	if err == nil {
		err = c.sftp.PosixRename(tmp, p)
	}
	if err != nil {
		c.sftp.Remove(tmp)
		return err
	}
	return nil
}
