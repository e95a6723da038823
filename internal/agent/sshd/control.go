package sshd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"banger/internal/agent/proto"
	"banger/internal/bootcfg"
)

// controlRetry is how long the control port loop waits before reading
// again after the host end closed, on a device that cannot signal the
// host's connection (a read then returns end of file at once, so this
// bounds the loop's wake-ups while no host is connected).
const controlRetry = 100 * time.Millisecond

// controlWait bounds the wait for the control port to appear (virtio
// console ports are added asynchronously after the driver loads).
const controlWait = 60 * time.Second

// serveControl serves the agent protocol on the control port device
// until ctx ends. Only the host's daemon reaches the port (a socket in the
// VM's root-only run folder).
func (s *server) serveControl(ctx context.Context, find func() string) {
	path := find()
	for deadline := time.Now().Add(controlWait); path == "" && time.Now().Before(deadline); path = find() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	if path == "" {
		s.log.Info("no control port")
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		s.log.Warn("control port", "path", path, "err", err)
		return
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	// Ask for the host's connections to be signalled before the first
	// read, so a connection that comes while a read returns is not missed.
	w, err := newHostWaiter(f)
	if err != nil {
		s.log.Warn("control port: no connection signal, polling", "err", err)
	}
	defer w.close()
	s.log.Info("control port open", "path", path)
	for ctx.Err() == nil {
		if _, err := s.serveAgent(f, f, io.Discard); err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
			s.log.Debug("control port", "err", err)
		}
		w.wait(ctx)
	}
}

// reidentify makes this guest a new VM: network identity and hostname
// (cfg.Reidentify), SSH host key, clock and RNG.
func (s *server) reidentify(id *proto.Identity) error {
	if id == nil {
		return errors.New("missing identity")
	}
	if s.cfg.Reidentify == nil {
		return errors.New("this agent cannot change its identity")
	}
	if len(id.Entropy) < proto.MinEntropy || len(id.Entropy) > proto.MaxEntropy {
		return fmt.Errorf("entropy must be %d to %d bytes, got %d", proto.MinEntropy, proto.MaxEntropy, len(id.Entropy))
	}
	signer, err := ssh.ParsePrivateKey([]byte(id.HostKey))
	if err != nil {
		return fmt.Errorf("parse host key: %w", err)
	}
	if err := bootcfg.ValidateSecrets(id.Secrets, id.CACerts); err != nil {
		return err
	}
	// Entropy first: everything after (new connections' keys) draws fresh bytes.
	if err := s.sys.reseedRNG(id.Entropy); err != nil {
		return err
	}
	if err := s.setTime(id.TimeUnixNano); err != nil {
		return err
	}
	if err := s.cfg.Reidentify(*id); err != nil {
		return err
	}
	s.hostKey.set(signer)
	if len(id.Secrets) > 0 {
		secrets := slices.Clone(id.Secrets)
		s.secrets.Store(&secrets)
	}
	s.log.Info("identity changed", "hostname", id.Hostname, "address", id.Address, "host_key", ssh.FingerprintSHA256(signer.PublicKey()), "secrets", len(id.Secrets))
	return nil
}

// setSecrets gives a running VM its new set of secrets: checked whole
// before anything changes, applied by cfg.SetSecrets (files, trust
// stores), then new sessions get the new placeholders. Sessions already
// running keep the environment they started with.
func (s *server) setSecrets(u *proto.SecretsUpdate) error {
	if u == nil {
		return errors.New("missing secrets")
	}
	if s.cfg.SetSecrets == nil {
		return errors.New("this agent cannot change its secrets")
	}
	if err := bootcfg.ValidateSecrets(u.Secrets, u.CACerts); err != nil {
		return err
	}
	env, err := s.cfg.SetSecrets(*u)
	if err != nil {
		return err
	}
	secrets := slices.Clone(u.Secrets)
	s.secrets.Store(&secrets)
	var extra []string
	for _, kv := range env {
		if !slices.Contains(s.cfg.Env, kv) {
			extra = append(extra, kv)
		}
	}
	if p := s.secretsEnv.Load(); p != nil && len(extra) == 0 {
		extra = *p // a CA installed earlier stays trusted
	}
	s.secretsEnv.Store(&extra)
	s.log.Info("secrets changed", "secrets", len(secrets), "ca_certs", len(u.CACerts))
	return nil
}

// secretEnv is ENV=placeholder for each secret the sessions get: the
// boot configuration's, or the last reidentify's or secrets op's that
// carried secrets; then the variables a secrets op added.
func (s *server) secretEnv() []string {
	secrets := s.cfg.Secrets
	if p := s.secrets.Load(); p != nil {
		secrets = *p
	}
	env := make([]string, 0, len(secrets))
	for _, sec := range secrets {
		env = append(env, sec.Env+"="+sec.Placeholder)
	}
	if p := s.secretsEnv.Load(); p != nil {
		env = append(env, *p...)
	}
	return env
}

// swapSigner is the server's host key, replaceable while it serves (a
// clone takes a new one); new handshakes use the current key.
type swapSigner struct {
	mu sync.RWMutex
	s  ssh.Signer
}

func newSwapSigner(s ssh.Signer) *swapSigner { return &swapSigner{s: s} }

func (w *swapSigner) get() ssh.Signer {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.s
}

func (w *swapSigner) set(s ssh.Signer) {
	w.mu.Lock()
	w.s = s
	w.mu.Unlock()
}

// PublicKey and Sign delegate to the current key.
func (w *swapSigner) PublicKey() ssh.PublicKey { return w.get().PublicKey() }

func (w *swapSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	return w.get().Sign(rand, data)
}
