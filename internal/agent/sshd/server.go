// Package sshd is the guest agent's SSH server: root logins by public key,
// shells with a PTY, exec, sftp, legacy scp, local (direct-tcpip) and
// remote (tcpip-forward, streamlocal) forwarding, agent forwarding,
// several sessions per connection and the banger agent protocol (package
// proto) as a subsystem. Images need no SSH server of their own.
package sshd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"banger/internal/agent/proto"
	"banger/internal/bootcfg"
)

// DiskPaths are the mount points the agent's health and disk_usage ops look at.
type DiskPaths struct {
	Root    string // the root filesystem as seen by sessions ("/", the overlay)
	Work    string // the work disk's mount point ("/root")
	Overlay string // the overlay disk's mount point; used for disk usage when set
}

// Config configures Serve.
type Config struct {
	HostKey        []byte   // PEM private key (OpenSSH or PKCS8 ed25519)
	AuthorizedKeys []string // authorized_keys lines allowed to log in as root
	Env            []string // added to every session's environment (KEY=VALUE)
	Poweroff       func()   // called by the agent protocol's "poweroff" op, after replying
	Disks          DiskPaths
	// ControlPort, when set, finds the device of the virtio-serial control
	// port ("" while it has not appeared), on which the agent protocol is
	// served too, without SSH.
	ControlPort func() string
	// Reidentify applies a clone's new network identity and hostname
	// (reidentify op); the server itself swaps its host key, sets the
	// clock and reseeds the RNG.
	Reidentify func(proto.Identity) error
	// Secrets put ENV=placeholder in every session's environment; a
	// reidentify carrying secrets replaces them for new sessions.
	Secrets []bootcfg.Secret
	// SetSecrets applies a running VM's new secrets (secrets op): files
	// and trust stores. It returns environment variables new sessions get
	// from then on (those pointing TLS clients at the CA); the server
	// itself swaps the sessions' placeholders once it succeeded.
	SetSecrets func(proto.SecretsUpdate) (env []string, err error)
}

// loginUser is the only user name accepted.
const loginUser = "root"

// server is the state shared by the connections of one Serve call.
type server struct {
	cfg     Config
	log     *slog.Logger
	keys    *keySet
	hostKey *swapSigner
	sys     sysPaths
	started time.Time
	// secrets, once a reidentify set them, replace cfg.Secrets.
	secrets atomic.Pointer[[]bootcfg.Secret]
	// secretsEnv, once a secrets op set it, is added to sessions' env.
	secretsEnv atomic.Pointer[[]string]
}

// sysPaths are the files and defaults that shape sessions; tests replace them.
type sysPaths struct {
	passwd        string                // where root's login shell is looked up
	fallbackShell string                // used when passwd names no usable shell
	home          string                // HOME and working directory of sessions
	procRoot      string                // /proc, for the ports op
	start         startFunc             // starts a process; reap.Start in the agent
	setClock      func(time.Time) error // sets the system clock (set_time op)
	reseedRNG     func([]byte) error    // mixes host entropy into the kernel RNG (reseed op)
	agentDirs     []string              // where agent socket directories go; first usable wins
}

func defaultSysPaths() sysPaths {
	return sysPaths{
		passwd:        "/etc/passwd",
		fallbackShell: "/bin/sh",
		home:          "/root",
		procRoot:      "/proc",
		start:         reapStart,
		setClock:      setSystemClock,
		reseedRNG:     reseedKernelRNG,
		agentDirs:     []string{"/tmp", "/run"},
	}
}

// Serve accepts SSH connections on ln until ctx ends, then closes ln and
// every connection (their sessions' processes get SIGHUP) and returns nil.
// It returns an error when the configuration is unusable or Accept fails.
// Bad authorized_keys lines are logged and skipped.
func Serve(ctx context.Context, ln net.Listener, cfg Config, log *slog.Logger) error {
	return serve(ctx, ln, cfg, log, defaultSysPaths())
}

func serve(ctx context.Context, ln net.Listener, cfg Config, log *slog.Logger, sys sysPaths) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defaultHangupForSessions()
	signer, err := ssh.ParsePrivateKey(cfg.HostKey)
	if err != nil {
		return fmt.Errorf("ssh server: parse host key: %w", err)
	}
	s := &server{cfg: cfg, log: log, keys: newKeySet(), hostKey: newSwapSigner(signer), sys: sys, started: time.Now()}
	for i, line := range cfg.AuthorizedKeys {
		if err := s.keys.add(line); err != nil {
			log.Warn("ssh server: skip authorized key", "index", i, "err", err)
		}
	}
	conf := &ssh.ServerConfig{
		PublicKeyCallback: s.checkKey,
		MaxAuthTries:      10,
		ServerVersion:     "SSH-2.0-banger-agent",
	}
	conf.AddHostKey(s.hostKey)

	var wg sync.WaitGroup
	defer wg.Wait()
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	if cfg.ControlPort != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveControl(connCtx, cfg.ControlPort)
		}()
	}
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors for a moment: keep serving.
				log.Warn("ssh server: accept", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("ssh server: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handleConn(connCtx, nc, conf)
		}()
	}
}

// checkKey is the public key callback: root only, keys from the set.
func (s *server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if meta.User() != loginUser {
		return nil, fmt.Errorf("user %q is not allowed: log in as %s", meta.User(), loginUser)
	}
	if !s.keys.has(key) {
		return nil, fmt.Errorf("key %s is not authorized", ssh.FingerprintSHA256(key))
	}
	return &ssh.Permissions{Extensions: map[string]string{"pubkey-fp": ssh.FingerprintSHA256(key)}}, nil
}

// handleConn runs one client connection until it closes or ctx ends.
func (s *server) handleConn(ctx context.Context, nc net.Conn, conf *ssh.ServerConfig) {
	defer nc.Close()
	// The handshake must not hang forever on a silent client.
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	conn, chans, reqs, err := ssh.NewServerConn(nc, conf)
	if err != nil {
		s.log.Debug("ssh handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	nc.SetDeadline(time.Time{})
	log := s.log.With("remote", conn.RemoteAddr().String())
	log.Info("ssh login", "user", conn.User(), "key", conn.Permissions.Extensions["pubkey-fp"])
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cs := newConnState(s, conn, log)
	globalDone := make(chan struct{})
	go func() {
		defer close(globalDone)
		cs.handleGlobal(reqs)
	}()

	var wg sync.WaitGroup
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			if !cs.sessionsAllowed() {
				nch.Reject(ssh.Prohibited, "no more sessions")
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.handleSession(cs, nch, log)
			}()
		case "direct-tcpip":
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.handleDirectTCPIP(ctx, nch, log)
			}()
		default:
			nch.Reject(ssh.UnknownChannelType, "unsupported channel type "+nch.ChannelType())
		}
	}
	// The connection is gone: once its global requests and sessions are
	// done no listener can be added, and every one left is closed.
	<-globalDone
	wg.Wait()
	cs.close()
	log.Debug("ssh connection closed")
}

// keySet is the set of authorized keys; the agent protocol adds to it.
type keySet struct {
	mu   sync.Mutex
	keys map[string]bool // ssh wire format of each key
}

func newKeySet() *keySet { return &keySet{keys: map[string]bool{}} }

// add parses one authorized_keys line; blank lines and comments are ignored.
func (k *keySet) add(line string) error {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return nil
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return fmt.Errorf("parse authorized key %q: %w", abbreviate(line), err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[string(key.Marshal())] = true
	return nil
}

func (k *keySet) has(key ssh.PublicKey) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys[string(key.Marshal())]
}

// abbreviate shortens s for error messages.
func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
