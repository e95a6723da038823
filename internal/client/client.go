// Package client is the typed Go client of the daemon's API. Callers get
// results or errors that wrap the api sentinels (test with errors.Is); they
// never see HTTP status codes.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"banger/internal/api"
)

// ErrUnreachable means no daemon answered on the socket.
var ErrUnreachable = errors.New("daemon unreachable")

// Client talks to bangerd over its Unix socket. The zero value is not usable;
// use New.
type Client struct {
	socket string
	hc     *http.Client
}

// New returns a client for the daemon listening on socket.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 2,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket is the socket path this client uses.
func (c *Client) Socket() string { return c.socket }

// call POSTs params to path and decodes the result into out. With a non-nil
// progress it asks for a streamed response and reports each progress line.
func (c *Client) call(ctx context.Context, path string, params, out any, progress func(api.ProgressEvent)) error {
	return c.callData(ctx, path, params, out, progress, nil)
}

// callData is call that also takes a streamed response's data lines (a
// non-nil data asks for a streamed response) and writes them to data.
func (c *Client) callData(ctx context.Context, path string, params, out any, progress func(api.ProgressEvent), data io.Writer) error {
	if params == nil {
		params = api.Empty{}
	}
	body, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://banger"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if progress != nil || data != nil {
		req.Header.Set("Accept", "application/x-ndjson")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.socket, unwrapDial(err))
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "application/x-ndjson" {
		return readStream(resp.Body, out, progress, data)
	}
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}

func readStream(r io.Reader, out any, progress func(api.ProgressEvent), data io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var line struct {
			Progress *api.ProgressEvent `json:"progress"`
			Result   json.RawMessage    `json:"result"`
			Error    *api.ErrorDetail   `json:"error"`
			Data     []byte             `json:"data"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("decode stream: %w", err)
		}
		switch {
		case line.Error != nil:
			return toError(*line.Error)
		case line.Data != nil:
			if data == nil {
				return errors.New("daemon sent data this request did not ask for")
			}
			if _, err := data.Write(line.Data); err != nil {
				return fmt.Errorf("write streamed data: %w", err)
			}
		case line.Progress != nil:
			if progress != nil {
				progress(*line.Progress)
			}
		case line.Result != nil:
			if out == nil {
				return nil
			}
			return json.Unmarshal(line.Result, out)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read stream: %w", err)
	}
	return errors.New("daemon closed the stream before sending a result (see the daemon log)")
}

func decodeError(resp *http.Response) error {
	var body api.ErrorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(data, &body); err != nil || body.Error.Message == "" {
		return fmt.Errorf("daemon answered %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	return toError(body.Error)
}

func toError(d api.ErrorDetail) error {
	if kind := api.KindOf(d.Code); kind != nil {
		return api.Errorf(kind, "%s", d.Message)
	}
	return errors.New(d.Message)
}

func unwrapDial(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// WaitReady polls Ping until the daemon answers or timeout passes.
func (c *Client) WaitReady(ctx context.Context, timeout time.Duration) (api.PingResult, error) {
	deadline := time.Now().Add(timeout)
	for {
		res, err := c.Ping(ctx)
		if err == nil || !errors.Is(err, ErrUnreachable) || time.Now().After(deadline) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
