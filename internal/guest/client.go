// Package guest is the host side of banger's guest agent: an SSH client
// that pins the guest's host key, speaks the agent protocol (package
// proto) and runs commands.
package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"banger/internal/agent/proto"
	"banger/internal/api"
)

// User is the account banger logs in as.
const User = "root"

// Client is a connection to one guest's agent. It is safe for concurrent
// use: every call opens its own SSH channel.
//
// Every agent call, and the start of every Run, has a deadline
// (CallTimeout, or the context's if sooner). When a call's context ends
// before the call returns, the whole SSH connection is closed: nothing
// else reliably unblocks a guest that stopped answering (it can leave a
// channel open unconfirmed, or never acknowledge a close), and the Client
// is then unusable.
type Client struct {
	ssh  *ssh.Client
	addr string
	// CallTimeout bounds each agent call and the start of each Run
	// (DefaultCallTimeout when zero).
	CallTimeout time.Duration
}

// DefaultCallTimeout bounds one agent round trip. The health check syncs
// files in the guest, which takes a few seconds at worst under TCG.
const DefaultCallTimeout = 20 * time.Second

// DefaultDialTimeout bounds Dial when its context has no deadline.
const DefaultDialTimeout = 15 * time.Second

func (c *Client) callTimeout() time.Duration {
	if c.CallTimeout > 0 {
		return c.CallTimeout
	}
	return DefaultCallTimeout
}

// TimeoutError is a guest round trip that ran past its deadline; it
// matches context.DeadlineExceeded with errors.Is.
type TimeoutError struct{ After time.Duration }

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("no answer from the guest within %v (is it frozen or overloaded?)", e.After)
}

// Is makes errors.Is(err, context.DeadlineExceeded) hold.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// withDeadline derives the context of one guest round trip: it ends after
// d with a *TimeoutError as its cause.
func withDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, &TimeoutError{After: d})
}

// closeOnEnd closes the connection when ctx ends before the returned stop
// is called; stop reports whether it was in time.
func (c *Client) closeOnEnd(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.ssh.Close() })
}

// HostKeyError means the guest presented a host key other than the pinned one.
type HostKeyError struct {
	Addr      string
	Want, Got string // SHA256 fingerprints
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("guest %s presented host key %s, expected %s: refusing to connect (the guest's host key changed)", e.Addr, e.Got, e.Want)
}

// Dial connects as root to addr ("ip:22" or "127.0.0.1:port") with signer,
// pinning hostKey (an authorized_keys line); a different key is refused
// with a *HostKeyError.
func Dial(ctx context.Context, addr string, signer ssh.Signer, hostKey string) (*Client, error) {
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
	if err != nil {
		return nil, fmt.Errorf("dial guest %s: parse pinned host key: %w", addr, err)
	}
	conf := &ssh.ClientConfig{
		User: User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, got ssh.PublicKey) error {
			if !bytes.Equal(got.Marshal(), want.Marshal()) {
				return &HostKeyError{Addr: addr, Want: ssh.FingerprintSHA256(want), Got: ssh.FingerprintSHA256(got)}
			}
			return nil
		},
		HostKeyAlgorithms: hostKeyAlgorithms(want),
	}
	// chacha20-poly1305 first, as OpenSSH does: the guest's CPU may be
	// emulated (TCG), where AES-GCM without AES-NI costs more per byte.
	conf.Ciphers = append([]string{ssh.CipherChaCha20Poly1305}, slices.DeleteFunc(ssh.SupportedAlgorithms().Ciphers, func(c string) bool { return c == ssh.CipherChaCha20Poly1305 })...)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultDialTimeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial guest %s: %w", addr, err)
	}
	// The handshake follows ctx: a deadline, and a close if ctx ends early.
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	conn, chans, reqs, err := ssh.NewClientConn(nc, addr, conf)
	if !stop() {
		if err == nil {
			conn.Close()
		}
		nc.Close()
		return nil, fmt.Errorf("dial guest %s: %w", addr, context.Cause(ctx))
	}
	if err != nil {
		nc.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk
		}
		return nil, fmt.Errorf("dial guest %s: ssh handshake: %w", addr, err)
	}
	nc.SetDeadline(time.Time{})
	return &Client{ssh: ssh.NewClient(conn, chans, reqs), addr: addr}, nil
}

// hostKeyAlgorithms makes the server present the pinned key's type.
func hostKeyAlgorithms(key ssh.PublicKey) []string {
	if key.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{key.Type()}
}

// Close closes the connection.
func (c *Client) Close() error {
	return c.ssh.Close()
}

// SSH returns the underlying SSH client (for sftp and interactive sessions).
func (c *Client) SSH() *ssh.Client {
	return c.ssh
}

// Ping checks that the agent answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.call(ctx, proto.Request{Op: proto.OpPing}, nil)
}

// Health runs the agent's health checks. The clock check is decided here,
// and only here (clockCheck): the guest's time must be within
// proto.MaxClockSkew of the host's. The skew is measured NTP-style around
// the request line alone (not the channel set-up), leaving out the time
// the agent spent on its checks. The returned TimeUnixNano is the guest
// clock projected to the middle of this call on the host's clock, so a
// caller that compares it with the midpoint of its own call gets the same
// skew.
func (c *Client) Health(ctx context.Context) (proto.Health, error) {
	return c.health(ctx, false)
}

// Checks is Health with the clock check always present: added when the
// agent left it out.
func (c *Client) Checks(ctx context.Context) (proto.Health, error) {
	return c.health(ctx, true)
}

func (c *Client) health(ctx context.Context, addClock bool) (proto.Health, error) {
	var h proto.Health
	start := time.Now()
	rt, err := c.exchange(ctx, proto.Request{Op: proto.OpHealth}, nil, &h)
	if err != nil {
		return h, err
	}
	end := time.Now()
	if err := checkHealth(&h); err != nil {
		return h, err
	}
	skew := clockSkew(rt, h)
	h.TimeUnixNano = start.Add(end.Sub(start) / 2).Add(skew).UnixNano()
	clock := clockCheck(skew)
	seen := false
	for i := range h.Checks {
		if h.Checks[i].Name == proto.CheckClock {
			h.Checks[i], seen = clock, true
		}
	}
	if !seen && addClock {
		h.Checks = append(h.Checks, clock)
	}
	h.OK = true
	for _, ch := range h.Checks {
		h.OK = h.OK && ch.OK
	}
	return h, nil
}

// clockCheck is the host's verdict on the guest clock.
func clockCheck(skew time.Duration) proto.Check {
	return proto.Check{Name: proto.CheckClock, OK: skew.Abs() <= proto.MaxClockSkew,
		Detail: fmt.Sprintf("guest clock is %v off the host's (limit %v)", skew.Round(time.Millisecond), proto.MaxClockSkew)}
}

// clockSkew is how far the guest clock (read when the agent got the
// request, h.TimeUnixNano) is ahead of the host's: the host time at that
// moment is taken as half the network part of the round trip after the
// request was sent.
func clockSkew(rt roundTrip, h proto.Health) time.Duration {
	total := rt.received.Sub(rt.sent)
	work := min(max(time.Duration(h.ElapsedNanos), 0), total)
	hostAtRead := rt.sent.Add((total - work) / 2)
	return time.Unix(0, h.TimeUnixNano).Sub(hostAtRead)
}

// Ports lists the guest's listening TCP and UDP sockets.
func (c *Client) Ports(ctx context.Context) ([]api.VMPort, error) {
	var ports []api.VMPort
	if err := c.call(ctx, proto.Request{Op: proto.OpPorts}, &ports); err != nil {
		return nil, err
	}
	return checkPorts(ports)
}

// AuthorizeKey lets key (an authorized_keys line) log in until the guest
// stops; it does not survive a restart.
func (c *Client) AuthorizeKey(ctx context.Context, key string) error {
	return c.call(ctx, proto.Request{Op: proto.OpAuthorizeKey, Key: key}, nil)
}

// Poweroff asks the guest to shut down; it returns once the guest accepted.
func (c *Client) Poweroff(ctx context.Context) error {
	return c.call(ctx, proto.Request{Op: proto.OpPoweroff}, nil)
}

// DiskUsage reports used and total bytes of the overlay and the work disk.
func (c *Client) DiskUsage(ctx context.Context) (proto.DiskUsage, error) {
	var du proto.DiskUsage
	err := c.call(ctx, proto.Request{Op: proto.OpDiskUsage}, &du)
	return du, err
}

// SetTime sets the guest clock to t, advanced by the time that passes
// between this call and the moment the request is sent (opening the channel
// takes a round trip or two), so SetTime(ctx, time.Now()) leaves the guest
// within a one-way network delay of the host's clock.
func (c *Client) SetTime(ctx context.Context, t time.Time) error {
	called := time.Now()
	_, err := c.exchange(ctx, proto.Request{Op: proto.OpSetTime}, func(req *proto.Request) {
		req.TimeUnixNano = t.Add(time.Since(called)).UnixNano()
	}, nil)
	return err
}

// call sends one agent request on a fresh subsystem channel and decodes the
// result into out (when not nil).
func (c *Client) call(ctx context.Context, req proto.Request, out any) error {
	_, err := c.exchange(ctx, req, nil, out)
	return err
}

// roundTrip is when a request line left and its answer line arrived.
type roundTrip struct{ sent, received time.Time }

// exchange is call with a hook that fills in req right before it is sent;
// it also reports when the request line was sent and the answer read.
func (c *Client) exchange(ctx context.Context, req proto.Request, beforeSend func(*proto.Request), out any) (rt roundTrip, err error) {
	ctx, cancel := withDeadline(ctx, c.callTimeout())
	defer cancel()
	stop := c.closeOnEnd(ctx)
	defer stop()
	sess, err := c.ssh.NewSession()
	if err != nil {
		return rt, fmt.Errorf("agent %s: open channel: %w", req.Op, ctxErr(ctx, err))
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return rt, fmt.Errorf("agent %s: %w", req.Op, err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return rt, fmt.Errorf("agent %s: %w", req.Op, err)
	}
	if err := sess.RequestSubsystem(proto.Subsystem); err != nil {
		return rt, fmt.Errorf("agent %s: start subsystem %s: %w", req.Op, proto.Subsystem, ctxErr(ctx, err))
	}
	if beforeSend != nil {
		beforeSend(&req)
	}
	line, err := json.Marshal(req)
	if err != nil {
		return rt, fmt.Errorf("agent %s: encode request: %w", req.Op, err)
	}
	rt.sent = time.Now()
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		return rt, fmt.Errorf("agent %s: send request: %w", req.Op, ctxErr(ctx, err))
	}
	stdin.Close()
	respLine, err := readLine(stdout, MaxReplyBytes)
	rt.received = time.Now()
	if err != nil {
		return rt, fmt.Errorf("agent %s: read response: %w", req.Op, ctxErr(ctx, err))
	}
	return rt, decodeResponse(req.Op, respLine, out)
}

// AgentError is an op the agent answered with an error (bounded).
type AgentError struct{ Msg string }

func (e *AgentError) Error() string { return "agent: " + e.Msg }

// decodeResponse decodes an answer line: the op's error, or its result
// into out (when not nil).
func decodeResponse(op string, line []byte, out any) error {
	var resp proto.Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("agent %s: decode response: %w", op, err)
	}
	if !resp.OK {
		return &AgentError{Msg: clip(resp.Error, MaxMessageBytes)}
	}
	if out != nil {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return fmt.Errorf("agent %s: decode result: %w", op, err)
		}
	}
	return nil
}

// ctxErr prefers the context's error when ctx ended (the cause of err).
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// Run runs cmd (a shell command line) in the guest without a PTY, wiring
// stdin, stdout and stderr (each may be nil), and returns its exit status.
// A command killed by a signal returns 128+the signal number, like a shell.
// When ctx ends, the command's process group gets SIGKILL.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	// Starting the command is a round trip with a deadline; the command
	// itself then runs as long as ctx allows.
	sctx, cancel := withDeadline(ctx, c.callTimeout())
	defer cancel()
	stop := c.closeOnEnd(sctx)
	sess, err := c.ssh.NewSession()
	if err != nil {
		stop()
		return -1, fmt.Errorf("run in guest: open channel: %w", ctxErr(sctx, err))
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	err = sess.Start(cmd)
	if !stop() {
		return -1, fmt.Errorf("run in guest %q: %w", cmd, context.Cause(sctx))
	}
	if err != nil {
		return -1, fmt.Errorf("run in guest: start %q: %w", cmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		return -1, fmt.Errorf("run in guest %q: %w", cmd, context.Cause(ctx))
	}
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		if sig := exitErr.Signal(); sig != "" {
			if n := unix.SignalNum("SIG" + sig); n != 0 {
				return 128 + int(n), nil
			}
			return -1, fmt.Errorf("run in guest %q: killed by signal %s", cmd, sig)
		}
		return exitErr.ExitStatus(), nil
	default:
		return -1, fmt.Errorf("run in guest %q: %w", cmd, err)
	}
}

// WaitReady dials addr until the agent answers a health request or ctx
// ends; it then returns the connected client. A host key mismatch stops
// at once. On timeout the error includes the last failure.
func WaitReady(ctx context.Context, addr string, signer ssh.Signer, hostKey string) (*Client, error) {
	var last error
	for {
		// A short TCP probe first, repeated often: while the guest is still
		// booting a connection attempt can hang in ARP resolution or SYN
		// retransmission for seconds, and a fresh attempt every 50 ms
		// notices the guest's SSH server within one round trip.
		if last = probe(ctx, addr); last == nil {
			c, err := tryReady(ctx, addr, signer, hostKey)
			if err == nil {
				return c, nil
			}
			var hk *HostKeyError
			if errors.As(err, &hk) {
				return nil, err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for guest agent at %s: %w (last error: %v)", addr, context.Cause(ctx), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitReachable returns once a TCP connection to addr opens, probing as
// WaitReady does, or with ctx's cause when ctx ends first. It proves the
// host reaches the guest's SSH port without an SSH login, which costs the
// guest's (possibly emulated) CPU a key exchange.
func WaitReachable(ctx context.Context, addr string) error {
	for {
		last := probe(ctx, addr)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to accept connections: %w (last error: %v)", addr, context.Cause(ctx), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// probe reports whether a TCP connection to addr opens within 250 ms.
func probe(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 250 * time.Millisecond}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func tryReady(ctx context.Context, addr string, signer ssh.Signer, hostKey string) (*Client, error) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := Dial(actx, addr, signer, hostKey)
	if err != nil {
		return nil, err
	}
	if _, err := c.Health(actx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
