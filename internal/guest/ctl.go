package guest

import (
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
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("control port: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("control port %s: %w", req.Op, err)
	}
	if _, err := conn.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("control port %s: send: %w", req.Op, ctxErr(ctx, err))
	}
	respLine, err := readLine(conn, MaxReplyBytes)
	if err != nil {
		return fmt.Errorf("control port %s: read response: %w", req.Op, ctxErr(ctx, err))
	}
	var resp proto.Response
	if err := json.Unmarshal(respLine, &resp); err != nil {
		return fmt.Errorf("control port %s: decode response: %w", req.Op, err)
	}
	if !resp.OK {
		return fmt.Errorf("agent: %s", clip(resp.Error, MaxMessageBytes))
	}
	if out != nil {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return fmt.Errorf("control port %s: decode result: %w", req.Op, err)
		}
	}
	return nil
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
	for {
		actx, cancel := context.WithTimeout(ctx, controlAttempt)
		id.TimeUnixNano = time.Now().UnixNano()
		err := ControlCall(actx, socket, proto.Request{Op: proto.OpReidentify, Identity: &id}, nil)
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
