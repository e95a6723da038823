package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/server"
)

// serveTest runs the daemon's socket server (listen, limitConns,
// newHTTPServer) with h on a socket in a folder every uid may enter.
func serveTest(t *testing.T, h http.Handler, lim Limits) string {
	t.Helper()
	path, _ := serveTestCounted(t, h, lim)
	return path
}

// serveTestCounted is serveTest that also returns how many connections of
// uid the limiter holds (accepting runs in the server's goroutine).
func serveTestCounted(t *testing.T, h http.Handler, lim Limits) (string, func(uid int) int) {
	t.Helper()
	dir, err := os.MkdirTemp("", "banger-conns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "bangerd.sock")
	ln, _, err := listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	srv := newHTTPServer(h, lim, log)
	limited := limitConns(ln, lim, log).(*connLimiter)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(limited)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return path, func(uid int) int {
		limited.mu.Lock()
		defer limited.mu.Unlock()
		return limited.perID[uid]
	}
}

func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// ping asks for /v1/ping and returns the status and the error message.
func ping(path string) (int, string, error) {
	resp, err := socketClient(path).Get("http://banger/v1/ping")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var body api.ErrorBody
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error.Message, nil
}

// slowConn opens a connection that sends half a request and nothing more.
func slowConn(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "POST /v1/ping HTTP/1.1\r\nHost: banger\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConnCapPerUID: one uid holding its cap of slow connections is
// turned away with a clear 503; another uid is still served; a freed
// slot serves the first uid again.
func TestConnCapPerUID(t *testing.T) {
	const cap = 4
	lim := Limits{PerUID: cap, RootConns: cap, HeaderTimeout: time.Hour, ReadTimeout: time.Hour}
	path, held := serveTestCounted(t, server.New(server.Services{}, slog.New(slog.DiscardHandler)), lim)
	if code, _, err := ping(path); err != nil || code != http.StatusOK {
		t.Fatalf("ping before the flood: %d, %v", code, err)
	}
	// Each slow connection is held before the next opens, and the ping's
	// connection is released first: the cap is then exactly the slow ones.
	waitHeld := func(n int) {
		for i := 0; i < 500 && held(os.Getuid()) != n; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if got := held(os.Getuid()); got != n {
			t.Fatalf("limiter holds %d connections, want %d", got, n)
		}
	}
	waitHeld(0)
	var slow []net.Conn
	for i := range cap {
		slow = append(slow, slowConn(t, path))
		waitHeld(i + 1)
	}
	// The slow connections count once accepted: wait for the cap to hold
	// (accepting runs in the server's goroutine).
	var code int
	var msg string
	for range 200 {
		var err error
		if code, msg, err = ping(path); err != nil {
			t.Fatal(err)
		}
		if code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := fmt.Sprintf("too many connections from uid %d (at most %d at a time)", os.Getuid(), cap)
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, want) {
		t.Fatalf("over the cap: %d %q, want 503 %q", code, msg, want)
	}
	// More refused attempts do not pile up.
	for range 3 * cap {
		if code, _, err := ping(path); err != nil || code != http.StatusServiceUnavailable {
			t.Fatalf("over the cap again: %d, %v", code, err)
		}
	}
	if os.Getuid() == 0 {
		if out := pingAs(t, path, 65534); out != "200" {
			t.Fatalf("another uid while uid 0 is at its cap: %s", out)
		}
	} else {
		t.Log("not root: the other-uid part is skipped")
	}
	slow[0].Close()
	for range 200 {
		if code, _, _ = ping(path); code == http.StatusOK {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("after a slot was freed: %d", code)
	}
}

// pingAs pings the socket from a copy of this test binary running as uid.
func pingAs(t *testing.T, path string, uid int) string {
	t.Helper()
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(path), "helper")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperPing$")
	cmd.Env = append(os.Environ(), "BANGER_TEST_PING_SOCKET="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as uid %d: %v\n%s", uid, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(l, "status "); ok {
			return s
		}
	}
	return string(out)
}

// TestHelperPing is the child of pingAs.
func TestHelperPing(t *testing.T) {
	path := os.Getenv("BANGER_TEST_PING_SOCKET")
	if path == "" {
		t.Skip("helper for TestConnCapPerUID")
	}
	code, msg, err := ping(path)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("status %d\n%s\n", code, msg)
}

// TestSlowBodyClosed: a request whose body does not arrive within
// ReadTimeout is answered with an error and its connection closed, and
// its slot is free again.
func TestSlowBodyClosed(t *testing.T) {
	lim := Limits{PerUID: 1, RootConns: 1, HeaderTimeout: time.Hour, ReadTimeout: 300 * time.Millisecond}
	path := serveTest(t, server.New(server.Services{}, slog.New(slog.DiscardHandler)), lim)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /v1/ping HTTP/1.1\r\nHost: banger\r\nContent-Length: 1000\r\n\r\n{\"a\":")
	// A generous guard so a broken server fails the test instead of
	// hanging it; the server must close well before.
	c.SetReadDeadline(time.Now().Add(time.Minute))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a slow body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "read request body") {
		t.Fatalf("slow body: %d %s", resp.StatusCode, body)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection after a slow body: %v, want EOF", err)
	}
	var code int
	for range 200 {
		if code, _, _ = ping(path); code == http.StatusOK {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("the slow connection's slot was not given back: %d", code)
	}
}

// TestSlowHeaderClosed: headers that do not arrive within HeaderTimeout
// get the connection closed.
func TestSlowHeaderClosed(t *testing.T) {
	lim := Limits{HeaderTimeout: 200 * time.Millisecond}
	path := serveTest(t, server.New(server.Services{}, slog.New(slog.DiscardHandler)), lim)
	c := slowConn(t, path)
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("slow headers: %v, want the server to close", err)
	}
}

// TestLongHandlersNotCut: a handler that works, or streams with pauses,
// longer than every read and idle timeout is not cut off.
func TestLongHandlersNotCut(t *testing.T) {
	lim := Limits{HeaderTimeout: 100 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			time.Sleep(300 * time.Millisecond)
			fmt.Fprintf(w, "line %d\n", i)
			w.(http.Flusher).Flush()
		}
	})
	path := serveTest(t, h, lim)
	resp, err := socketClient(path).Post("http://banger/v1/vm/create", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "line 0\nline 1\nline 2\n" {
		t.Fatalf("long stream: %q, %v", body, err)
	}
}

// TestWriteStall: a write the caller does not read is abandoned after
// the stall time instead of holding the handler forever.
func TestWriteStall(t *testing.T) {
	a, b := net.Pipe() // synchronous: a write waits for a read
	defer a.Close()
	defer b.Close()
	c := &callerConn{Conn: a, stall: 100 * time.Millisecond, release: func() {}}
	_, err := c.Write([]byte("nobody reads this"))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled write: %v", err)
	}
}

// TestCallerAttached: requests carry the caller read at accept.
func TestCallerAttached(t *testing.T) {
	got := make(chan authz.Caller, 1)
	path := serveTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- authz.CallerFrom(r.Context())
	}), Limits{})
	if _, _, err := ping(path); err != nil {
		t.Fatal(err)
	}
	if c := <-got; c.UID != os.Getuid() || c.PID != os.Getpid() {
		t.Fatalf("caller %+v, want uid %d pid %d", c, os.Getuid(), os.Getpid())
	}
}
