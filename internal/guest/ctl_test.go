package guest

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/agent/proto"
)

// fakeControlPort serves a unix socket like QEMU's control port chardev:
// serve gets each accepted connection.
func fakeControlPort(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return sock
}

func TestControlConnHealthThenSetTime(t *testing.T) {
	var ops []proto.Request
	got := make(chan struct{})
	sock := fakeControlPort(t, func(c net.Conn) {
		// The agent opens the port late: the request waits in the socket.
		time.Sleep(200 * time.Millisecond)
		br := bufio.NewReader(c)
		for range 2 {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return
			}
			var req proto.Request
			json.Unmarshal(line, &req)
			ops = append(ops, req)
			switch req.Op {
			case proto.OpHealth:
				res, _ := json.Marshal(proto.Health{OK: true, TimeUnixNano: time.Now().UnixNano(),
					Checks: []proto.Check{{Name: proto.CheckAgent, OK: true}, {Name: proto.CheckClock, OK: true}}})
				json.NewEncoder(c).Encode(proto.Response{OK: true, Result: res})
			default:
				json.NewEncoder(c).Encode(proto.Response{OK: true})
			}
		}
		close(got)
	})
	ctx := testCtx(t)
	c, err := DialControl(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Health(ctx)
	if err != nil || !h.OK {
		t.Fatalf("health: %+v, %v", h, err)
	}
	before := time.Now().UnixNano()
	if err := c.SetTime(ctx); err != nil {
		t.Fatal(err)
	}
	<-got
	if len(ops) != 2 || ops[0].Op != proto.OpHealth || ops[1].Op != proto.OpSetTime || ops[1].TimeUnixNano < before {
		t.Fatalf("requests: %+v", ops)
	}
}

func TestControlConnBoundsHostileReplies(t *testing.T) {
	for name, reply := range map[string]string{
		"error":     `{"ok":false,"error":"` + strings.Repeat("x", 5000) + `"}` + "\n",
		"too long":  `{"ok":true,"result":"` + strings.Repeat("y", MaxReplyBytes) + `"}` + "\n",
		"not json":  "hello\n",
		"no answer": "",
	} {
		t.Run(name, func(t *testing.T) {
			sock := fakeControlPort(t, func(c net.Conn) {
				bufio.NewReader(c).ReadBytes('\n')
				c.Write([]byte(reply))
				if reply == "" {
					time.Sleep(2 * time.Second)
				}
			})
			ctx, cancel := context.WithTimeout(testCtx(t), 500*time.Millisecond)
			defer cancel()
			c, err := DialControl(ctx, sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Health(ctx)
			if err == nil {
				t.Fatal("a bad reply was accepted")
			}
			if len(err.Error()) > 2*MaxMessageBytes {
				t.Fatalf("error not bounded: %d bytes", len(err.Error()))
			}
		})
	}
}

func TestDialControlNoSocket(t *testing.T) {
	if _, err := DialControl(testCtx(t), filepath.Join(t.TempDir(), "none.sock")); err == nil {
		t.Fatal("dial of a missing socket succeeded")
	}
}

func TestWaitReachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	if err := WaitReachable(ctx, addr); err == nil {
		t.Fatal("nothing listens: want an error")
	}
	go func() {
		time.Sleep(150 * time.Millisecond)
		if l, err := net.Listen("tcp", addr); err == nil {
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
	}()
	if err := WaitReachable(testCtx(t), addr); err != nil {
		t.Fatal(err)
	}
}
