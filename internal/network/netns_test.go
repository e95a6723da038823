package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// envNetNS names the test a child process runs inside its own network
// namespace.
const envNetNS = "BANGER_TEST_NETNS"

// isolated runs the calling test again in a child process inside a fresh
// network namespace, so the host's networking is never touched. It
// returns true in that child (run the body) and false in the parent (the
// child's verdict has been reported).
func isolated(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envNetNS) == t.Name() {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			t.Fatalf("bring up lo in test namespace: %v", err)
		}
		// A new namespace may copy the host's IPv4 forwarding (which a
		// daemon running beside the tests turns on): start from off.
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0\n"), 0o644); err != nil {
			t.Fatalf("turn IPv4 forwarding off in test namespace: %v", err)
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs in a private network namespace")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), envNetNS+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Skipf("needs root (CAP_SYS_ADMIN) to make a network namespace: %v", err)
	}
	switch {
	case err != nil:
		t.Fatalf("in private network namespace: %v\n%s", err, out)
	case bytes.Contains(out, []byte("--- SKIP: "+t.Name())):
		t.Skipf("skipped in private network namespace:\n%s", out)
	case !bytes.Contains(out, []byte("--- PASS: "+t.Name())):
		t.Fatalf("test did not run in private network namespace:\n%s", out)
	}
	if testing.Verbose() {
		t.Logf("in private network namespace:\n%s", out)
	}
	return false
}

// newNS makes a network namespace without moving the caller into it.
func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result)
	go func() {
		// The thread switches namespace and is thrown away when this
		// goroutine ends locked.
		runtime.LockOSThread()
		ns, err := netns.New()
		ch <- result{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("new network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	return r.ns
}

// inNS runs fn on a thread inside ns; sockets fn opens stay in ns.
func inNS(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("enter namespace: %v", err)
	}
}

// memIPs is an in-memory IPStore: first free address of the pool, never
// one held by another VM.
type memIPs struct {
	mu sync.Mutex
	m  map[string]netip.Addr
}

func newMemIPs() *memIPs { return &memIPs{m: map[string]netip.Addr{}} }

func (s *memIPs) AllocateIP(_ context.Context, vmID string, pool []netip.Addr) (netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.m[vmID]; ok {
		return a, nil
	}
	used := map[netip.Addr]bool{}
	for _, a := range s.m {
		used[a] = true
	}
	for _, a := range pool {
		if !used[a] {
			s.m[vmID] = a
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("pool exhausted")
}

func (s *memIPs) ReleaseIP(_ context.Context, vmID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, vmID)
	return nil
}

func (s *memIPs) ListIPs(context.Context) (map[string]netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]netip.Addr, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

// newTestManager makes a Manager with an in-memory store and a log that
// goes to the test.
func newTestManager(t *testing.T, cfg Config) (*Manager, *memIPs) {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.HostRunDir == "" {
		cfg.HostRunDir = testHostRunDir(t)
	}
	ips := newMemIPs()
	m, err := New(cfg, ips, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return m, ips
}

// testHostRunDir is the host-wide folder the managers of one test share
// (as the daemons of one host share /run/banger/network), removed after it.
func testHostRunDir(t *testing.T) string {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("banger-net-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}
