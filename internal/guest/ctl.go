package guest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"banger/internal/agent/proto"
)

// ControlCall runs one agent request over a VM's control port (the unix
// socket of its virtio-serial port, in its run folder): no network and no
// SSH, so it reaches a clone before it has an address of its own. The
// reply is bounded like every agent reply; ctx bounds the whole exchange.
func ControlCall(ctx context.Context, socket string, req proto.Request, out any) error {
	c, err := DialControl(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.exchange(ctx, req, nil, out)
	return err
}

// ControlConn is one connection to a VM's control port. Requests written
// before the guest's agent opens the port wait in the socket: the agent
// reads them when it starts serving, so a caller that sends at once
// learns the moment the agent is up without polling. Not safe for
// concurrent use.
type ControlConn struct {
	conn net.Conn
	br   *bufio.Reader
}

// DialControl connects to the control port's socket.
func DialControl(ctx context.Context, socket string) (*ControlConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("control port: %w", err)
	}
	return &ControlConn{conn: conn, br: bufio.NewReader(conn)}, nil
}

// Close closes the connection.
func (c *ControlConn) Close() error { return c.conn.Close() }

// Health runs the agent's health checks (as Client.Health, clock check
// decided here from the skew around the request).
func (c *ControlConn) Health(ctx context.Context) (proto.Health, error) {
	var h proto.Health
	rt, err := c.exchange(ctx, proto.Request{Op: proto.OpHealth}, nil, &h)
	if err != nil {
		return h, err
	}
	if err := checkHealth(&h); err != nil {
		return h, err
	}
	skew := clockSkew(rt, h)
	h.TimeUnixNano = rt.sent.Add(rt.received.Sub(rt.sent) / 2).Add(skew).UnixNano()
	clock := clockCheck(skew)
	seen := false
	for i := range h.Checks {
		if h.Checks[i].Name == proto.CheckClock {
			h.Checks[i], seen = clock, true
		}
	}
	if !seen {
		h.Checks = append(h.Checks, clock)
	}
	h.OK = true
	for _, ch := range h.Checks {
		h.OK = h.OK && ch.OK
	}
	return h, nil
}

// SetTime sets the guest clock to the host's at the moment the request
// is sent.
func (c *ControlConn) SetTime(ctx context.Context) error {
	_, err := c.exchange(ctx, proto.Request{Op: proto.OpSetTime}, func(req *proto.Request) {
		req.TimeUnixNano = time.Now().UnixNano()
	}, nil)
	return err
}

// exchange sends req, after beforeSend (when not nil) filled it in, and
// reads its answer into out (when not nil).
func (c *ControlConn) exchange(ctx context.Context, req proto.Request, beforeSend func(*proto.Request), out any) (rt roundTrip, err error) {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	} else {
		c.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if beforeSend != nil {
		beforeSend(&req)
	}
	line, err := json.Marshal(req)
	if err != nil {
		return rt, fmt.Errorf("control port %s: %w", req.Op, err)
	}
	rt.sent = time.Now()
	if _, err := c.conn.Write(append(line, '\n')); err != nil {
		return rt, fmt.Errorf("control port %s: send: %w", req.Op, ctxErr(ctx, err))
	}
	respLine, err := readLineFrom(c.br, MaxReplyBytes)
	rt.received = time.Now()
	if err != nil {
		return rt, fmt.Errorf("control port %s: read response: %w", req.Op, ctxErr(ctx, err))
	}
	var resp proto.Response
	if err := json.Unmarshal(respLine, &resp); err != nil {
		return rt, fmt.Errorf("control port %s: decode response: %w", req.Op, err)
	}
	if !resp.OK {
		return rt, fmt.Errorf("agent: %s", clip(resp.Error, MaxMessageBytes))
	}
	if out != nil {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return rt, fmt.Errorf("control port %s: decode result: %w", req.Op, err)
		}
	}
	return rt, nil
}

// Reidentify gives a clone its identity over its control port; the
// entropy and the clock are filled in here.
func Reidentify(ctx context.Context, socket string, id proto.Identity) error {
	id.Entropy = make([]byte, ReseedBytes)
	if _, err := rand.Read(id.Entropy); err != nil {
		return fmt.Errorf("reidentify: host entropy: %w", err)
	}
	// The guest may not see the host end open at once (a restored
	// virtio-serial port learns it from an event): try again on a fresh
	// connection until ctx ends. Applying the same identity twice is
	// harmless.
	return controlRetry(ctx, socket, func() proto.Request {
		id.TimeUnixNano = time.Now().UnixNano()
		return proto.Request{Op: proto.OpReidentify, Identity: &id}
	})
}

// SetSecrets gives a running VM its new set of secrets over its control
// port (applying the same set twice is harmless, so a timed out attempt
// is made again until ctx ends).
func SetSecrets(ctx context.Context, socket string, u proto.SecretsUpdate) error {
	return controlRetry(ctx, socket, func() proto.Request {
		return proto.Request{Op: proto.OpSecrets, Secrets: &u}
	})
}

// controlRetry sends the request req makes, on a fresh connection each
// attempt, until it is answered or fails other than by timing out, or
// ctx ends.
func controlRetry(ctx context.Context, socket string, req func() proto.Request) error {
	for {
		actx, cancel := context.WithTimeout(ctx, controlAttempt)
		err := ControlCall(actx, socket, req(), nil)
		cancel()
		var ne net.Error
		timedOut := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
		if err == nil || ctx.Err() != nil || !timedOut {
			return err
		}
	}
}

// controlAttempt bounds one control port attempt of Reidentify.
const controlAttempt = 5 * time.Second
