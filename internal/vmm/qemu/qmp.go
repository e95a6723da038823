package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"
)

// QMP is a client of QEMU's machine protocol on a unix socket. It runs one
// command at a time and ignores asynchronous events. It is not safe for
// concurrent use.
type QMP struct {
	conn   net.Conn
	dec    *json.Decoder
	nextID int
	oob    []byte // ancillary data (a descriptor) sent with the next command
}

// QMPError is an error reply from QEMU.
type QMPError struct {
	Command string
	Class   string `json:"class"`
	Desc    string `json:"desc"`
}

// Error reads "qmp COMMAND: CLASS: DESC".
func (e *QMPError) Error() string {
	return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc)
}

// Status is the reply of query-status.
type Status struct {
	Status  string `json:"status"` // e.g. "running", "paused", "shutdown"
	Running bool   `json:"running"`
}

type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *QMPError       `json:"error"`
	Event  string          `json:"event"`
	ID     json.RawMessage `json:"id"`
}

// DialQMP connects to the QMP socket at path, reads the greeting and
// negotiates capabilities. ctx bounds the handshake only.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp connect: %w", err)
	}
	c := &QMP{conn: conn, dec: json.NewDecoder(conn)}
	if err := c.handshake(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *QMP) handshake(ctx context.Context) error {
	defer c.bind(ctx)()
	var greeting qmpMessage
	if err := c.dec.Decode(&greeting); err != nil {
		return fmt.Errorf("qmp greeting: %w", ctxErr(ctx, err))
	}
	if greeting.QMP == nil {
		return errors.New("qmp greeting: not a qmp server")
	}
	return c.execute(ctx, "qmp_capabilities", nil, nil)
}

// Close closes the connection.
func (c *QMP) Close() error { return c.conn.Close() }

// Execute runs command with args (nil for none) and decodes its return value
// into result (nil to discard it). An error reply is a *QMPError.
func (c *QMP) Execute(ctx context.Context, command string, args, result any) error {
	defer c.bind(ctx)()
	return c.execute(ctx, command, args, result)
}

func (c *QMP) execute(ctx context.Context, command string, args, result any) error {
	c.nextID++
	id := strconv.Itoa(c.nextID)
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{command, args, id}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	if err := c.write(append(data, '\n')); err != nil {
		return fmt.Errorf("qmp %s: %w", command, ctxErr(ctx, err))
	}
	wantID, _ := json.Marshal(id)
	for {
		var m qmpMessage
		if err := c.dec.Decode(&m); err != nil {
			return fmt.Errorf("qmp %s: %w", command, ctxErr(ctx, err))
		}
		switch {
		case m.Event != "":
			continue // asynchronous event
		case m.ID != nil && !bytes.Equal(m.ID, wantID):
			continue // reply to an earlier, abandoned command
		case m.Error != nil:
			m.Error.Command = command
			return m.Error
		case m.Return != nil:
			if result == nil {
				return nil
			}
			if err := json.Unmarshal(m.Return, result); err != nil {
				return fmt.Errorf("qmp %s: decode reply: %w", command, err)
			}
			return nil
		default:
			return fmt.Errorf("qmp %s: unexpected message", command)
		}
	}
}

// QueryStatus runs query-status.
func (c *QMP) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := c.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// SystemPowerdown asks the guest to power off (ACPI power button).
func (c *QMP) SystemPowerdown(ctx context.Context) error {
	return c.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit makes QEMU exit at once. QEMU may close the connection before it
// replies; that counts as success.
func (c *QMP) Quit(ctx context.Context) error {
	err := c.Execute(ctx, "quit", nil, nil)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return err
}

// bind applies ctx's deadline and cancellation to the connection until the
// returned func is called.
func (c *QMP) bind(ctx context.Context) func() {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		c.conn.SetDeadline(time.Time{})
	}
}

// ctxErr prefers ctx's error to the i/o timeout it caused.
func ctxErr(ctx context.Context, err error) error {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}
