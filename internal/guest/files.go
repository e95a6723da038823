package guest

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"

	"banger/internal/agent/proto"
)

// The workspace ops: the host asks the agent to probe, replace (extract),
// archive or remove a folder instead of composing shell commands.

// Probe says whether dir is absent, an empty directory or anything else in
// the guest, and whether the guest has git.
func (c *Client) Probe(ctx context.Context, dir string) (proto.Probe, error) {
	var p proto.Probe
	if err := c.call(ctx, proto.Request{Op: proto.OpProbe, Path: dir}, &p); err != nil {
		return p, err
	}
	switch p.State {
	case proto.PathAbsent, proto.PathEmpty, proto.PathNonEmpty:
		return p, nil
	}
	return p, fmt.Errorf("agent probe: unknown state %.40q", p.State)
}

// Remove removes dir and everything below it in the guest.
func (c *Client) Remove(ctx context.Context, dir string) error {
	return c.call(ctx, proto.Request{Op: proto.OpRemove, Path: dir}, nil)
}

// Extract replaces dir in the guest by the tar stream r; with gitRefresh
// the agent then refreshes the git index there (best effort). Opening the
// channel has the call deadline; the stream runs as long as ctx allows.
func (c *Client) Extract(ctx context.Context, dir string, r io.Reader, gitRefresh bool) (proto.Extracted, error) {
	var sum proto.Extracted
	op, err := c.startStream(ctx, proto.Request{Op: proto.OpExtract, Path: dir, GitRefresh: gitRefresh})
	if err != nil {
		return sum, err
	}
	defer op.close()
	src := &readErr{r: r}
	_, copyErr := io.Copy(op.stdin, src)
	if src.err != nil {
		// The host's own stream failed: the guest must not take what it
		// got as the whole archive.
		return sum, fmt.Errorf("agent extract: %w", src.err)
	}
	op.stdin.Close()
	if err := op.answer(ctx, &sum); err != nil {
		// An agent that refused the op stopped reading: its answer is the
		// error to report, not the broken send.
		var refused *AgentError
		if copyErr != nil && !errors.As(err, &refused) {
			err = fmt.Errorf("%w (sending the archive: %v)", err, copyErr)
		}
		return sum, err
	}
	// A summary that cannot be true is refused first, whatever became of
	// the send (an agent may answer before reading everything).
	if sum.Files < 0 || sum.Dirs < 0 || sum.Bytes < 0 || sum.Skipped < 0 || sum.DoneUnixNano < 0 {
		return sum, fmt.Errorf("agent extract: negative counts in the summary %+v", sum)
	}
	if copyErr != nil {
		return sum, fmt.Errorf("agent extract: send archive: %w", ctxErr(ctx, copyErr))
	}
	return sum, nil
}

// Archive writes a tar of dir in the guest to w, leaving out entries whose
// base name matches one of exclude (filepath.Match) with everything below
// them. It fails unless the agent says the archive is complete. Opening
// the channel and the agent's answer have the call deadline; the stream
// runs as long as ctx allows. What the stream holds is the caller's to
// bound. With unchanged set, files still as the extraction left them come
// as headers only (see proto.Unchanged).
func (c *Client) Archive(ctx context.Context, dir string, exclude []string, unchanged *proto.Unchanged, w io.Writer) error {
	op, err := c.startStream(ctx, proto.Request{Op: proto.OpArchive, Path: dir, Exclude: exclude, Unchanged: unchanged})
	if err != nil {
		return err
	}
	defer op.close()
	op.stdin.Close()
	actx, cancel := withDeadline(ctx, c.callTimeout())
	stop := c.closeOnEnd(actx)
	err = op.answer(actx, nil)
	inTime := stop()
	cancel()
	if !inTime {
		return fmt.Errorf("agent archive: %w", context.Cause(actx))
	}
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, op.stdout); err != nil {
		return fmt.Errorf("agent archive: %w", ctxErr(ctx, err))
	}
	st, msg, err := op.wait(ctx)
	if err != nil {
		return fmt.Errorf("agent archive: %w", err)
	}
	if st != 0 {
		return fmt.Errorf("agent archive: incomplete (exit status %d): %s", st, msg)
	}
	return nil
}

// stream is an agent op that owns its channel (a raw session channel: the
// exit status and stderr are read here, bounded).
type stream struct {
	op     string
	ch     ssh.Channel
	stdin  io.WriteCloser // the channel's write side (Close sends EOF)
	stdout *bufio.Reader
	stderr *headBuffer
	status chan int // the exit status, or -1 without one, once the channel closed
	errEOF chan struct{}
	stop   func() bool
}

// startStream opens a channel for req and sends it, within the call
// deadline; the channel is then closed when ctx ends.
func (c *Client) startStream(ctx context.Context, req proto.Request) (*stream, error) {
	sctx, cancel := withDeadline(ctx, c.callTimeout())
	defer cancel()
	stop := c.closeOnEnd(sctx)
	op, err := c.openStream(sctx, req)
	if !stop() {
		if op != nil {
			op.ch.Close()
		}
		return nil, fmt.Errorf("agent %s: %w", req.Op, context.Cause(sctx))
	}
	if err != nil {
		return nil, err
	}
	op.stop = c.closeOnEnd(ctx)
	return op, nil
}

func (c *Client) openStream(ctx context.Context, req proto.Request) (*stream, error) {
	ch, reqs, err := c.ssh.OpenChannel("session", nil)
	if err != nil {
		return nil, fmt.Errorf("agent %s: open channel: %w", req.Op, ctxErr(ctx, err))
	}
	op := &stream{op: req.Op, ch: ch, stdin: closeWriter{ch}, stdout: bufio.NewReaderSize(ch, 64<<10),
		stderr: &headBuffer{max: MaxMessageBytes}, status: make(chan int, 1), errEOF: make(chan struct{})}
	go func() {
		status := -1
		for r := range reqs {
			if r.Type == "exit-status" && len(r.Payload) == 4 {
				status = int(binary.BigEndian.Uint32(r.Payload))
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
		op.status <- status
	}()
	go func() {
		io.Copy(op.stderr, ch.Stderr())
		close(op.errEOF)
	}()
	ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{proto.Subsystem}))
	if err == nil && !ok {
		err = errors.New("refused")
	}
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("agent %s: start subsystem %s: %w", req.Op, proto.Subsystem, ctxErr(ctx, err))
	}
	line, err := json.Marshal(req)
	if err == nil {
		_, err = ch.Write(append(line, '\n'))
	}
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("agent %s: send request: %w", req.Op, ctxErr(ctx, err))
	}
	return op, nil
}

// wait returns the exit status once the guest closed the channel (-1
// without one) and what it said on stderr.
func (op *stream) wait(ctx context.Context) (int, string, error) {
	select {
	case st := <-op.status:
		<-op.errEOF
		return st, op.stderr.String(), nil
	case <-ctx.Done():
		return -1, "", context.Cause(ctx)
	}
}

// closeWriter makes Close send EOF on the channel (keeping it open).
type closeWriter struct{ ch ssh.Channel }

func (w closeWriter) Write(p []byte) (int, error) { return w.ch.Write(p) }
func (w closeWriter) Close() error                { return w.ch.CloseWrite() }

// answer reads the agent's answer line and decodes its result into out.
// When ctx ends first, the connection is closed (see Client).
func (op *stream) answer(ctx context.Context, out any) error {
	line, err := readLineFrom(op.stdout, MaxReplyBytes)
	if err != nil {
		return fmt.Errorf("agent %s: read response: %w", op.op, ctxErr(ctx, err))
	}
	return decodeResponse(op.op, line, out)
}

func (op *stream) close() {
	op.stop()
	op.ch.Close()
}

// readErr remembers the error of the reader it wraps.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// headBuffer keeps the first max bytes written to it and drops the rest
// (never failing, so the channel keeps flowing).
type headBuffer struct {
	max int
	b   []byte
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (h *headBuffer) String() string {
	return clip(strings.TrimSpace(strings.ToValidUTF8(string(h.b), "?")), MaxMessageBytes)
}
