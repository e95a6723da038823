package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/server"
)

// fakeKernels is a KernelService whose Show and Pull answer with err, and
// whose Pull reports events first.
type fakeKernels struct {
	err    error
	events []api.ProgressEvent
}

func (f *fakeKernels) Catalog(context.Context) ([]api.KernelCatalogEntry, error) {
	return []api.KernelCatalogEntry{{Name: "debian-12-cloud", Pulled: true}}, nil
}
func (f *fakeKernels) Pull(_ context.Context, p api.KernelPullParams, progress func(api.ProgressEvent)) (api.KernelEntry, error) {
	for _, ev := range f.events {
		progress(ev)
	}
	return api.KernelEntry{Name: p.Name, KernelVersion: "6.1"}, f.err
}
func (f *fakeKernels) Import(_ context.Context, p api.KernelImportParams) (api.KernelEntry, error) {
	return api.KernelEntry{Name: p.Name}, nil
}
func (f *fakeKernels) List(context.Context) ([]api.KernelEntry, error) { return nil, nil }
func (f *fakeKernels) Show(_ context.Context, name string) (api.KernelEntry, error) {
	return api.KernelEntry{Name: name}, f.err
}
func (f *fakeKernels) Delete(context.Context, string) error { return f.err }

// socketDir is a short temporary folder (Unix socket paths are limited to 108 bytes).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bcl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// serve runs h on a fresh Unix socket and returns a client for it.
func serve(t *testing.T, h http.Handler) *Client {
	t.Helper()
	sock := filepath.Join(socketDir(t), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return New(sock)
}

// serveAPI runs the real API server over fake kernels (other services absent).
func serveAPI(t *testing.T, k *fakeKernels) *Client {
	return serve(t, server.New(server.Services{Kernels: k}, slog.New(slog.NewTextHandler(io.Discard, nil))))
}

func TestResultsDecoded(t *testing.T) {
	c := serveAPI(t, &fakeKernels{})
	ping, err := c.Ping(context.Background())
	if err != nil || ping.Status != "ok" || ping.PID != os.Getpid() {
		t.Fatalf("ping %+v, %v", ping, err)
	}
	cat, err := c.KernelCatalog(context.Background())
	if err != nil || len(cat) != 1 || cat[0].Name != "debian-12-cloud" || !cat[0].Pulled {
		t.Fatalf("catalog %+v, %v", cat, err)
	}
	e, err := c.KernelShow(context.Background(), "k1")
	if err != nil || e.Name != "k1" {
		t.Fatalf("show %+v, %v", e, err)
	}
}

func TestErrorsComeBackAsSentinels(t *testing.T) {
	kinds := []error{api.ErrNotFound, api.ErrExists, api.ErrInvalid, api.ErrConflict,
		api.ErrPermission, api.ErrNotImplemented, api.ErrUnavailable}
	for _, kind := range kinds {
		t.Run(kind.Error(), func(t *testing.T) {
			msg := fmt.Sprintf("kernel k: %s", kind)
			c := serveAPI(t, &fakeKernels{err: api.Errorf(kind, "%s", msg)})
			_, err := c.KernelShow(context.Background(), "k")
			if !errors.Is(err, kind) {
				t.Fatalf("error %v is not %v", err, kind)
			}
			if err.Error() != msg {
				t.Errorf("message %q, want %q", err.Error(), msg)
			}
			for _, other := range kinds {
				if other != kind && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
			if errors.Is(err, ErrUnreachable) {
				t.Errorf("a daemon answer is not unreachable")
			}
		})
	}
}

func TestUnbuiltCapabilityIsNotImplemented(t *testing.T) {
	c := serveAPI(t, &fakeKernels{})
	_, err := c.ImageList(context.Background())
	if !errors.Is(err, api.ErrNotImplemented) || !strings.Contains(err.Error(), "images") {
		t.Fatalf("image list without images: %v", err)
	}
	_, err = c.KernelShow(context.Background(), "")
	if !errors.Is(err, api.ErrInvalid) || err.Error() != "name is required" {
		t.Fatalf("empty name: %v", err)
	}
}

func TestInternalAndNonJSONErrors(t *testing.T) {
	c := serveAPI(t, &fakeKernels{err: errors.New("disk on fire")})
	_, err := c.KernelShow(context.Background(), "k")
	if err == nil || err.Error() != "disk on fire" {
		t.Fatalf("internal error: %v", err)
	}
	for _, kind := range []error{api.ErrNotFound, api.ErrInvalid, ErrUnreachable} {
		if errors.Is(err, kind) {
			t.Errorf("internal error matches %v", kind)
		}
	}

	c = serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream exploded", http.StatusBadGateway)
	}))
	_, err = c.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "upstream exploded") {
		t.Fatalf("non-JSON error: %v", err)
	}
}

func TestUnreachableSocket(t *testing.T) {
	dir := socketDir(t)
	missing := filepath.Join(dir, "missing.sock")
	// A stale socket file: bound once, nobody listening any more.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	for _, sock := range []string{missing, stale} {
		c := New(sock)
		_, err := c.Ping(context.Background())
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("%s: error %v is not ErrUnreachable", sock, err)
		}
		if !strings.Contains(err.Error(), sock) {
			t.Errorf("error %q does not name the socket", err)
		}
		if _, err := c.WaitReady(context.Background(), 0); !errors.Is(err, ErrUnreachable) {
			t.Errorf("WaitReady: %v", err)
		}
	}
}

func TestCancelledContextIsNotUnreachable(t *testing.T) {
	c := New(filepath.Join(socketDir(t), "missing.sock"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Ping(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("cancelled ping: %v", err)
	}
}

func TestWaitReadyAnswers(t *testing.T) {
	c := serveAPI(t, &fakeKernels{})
	res, err := c.WaitReady(context.Background(), time.Minute)
	if err != nil || res.Status != "ok" {
		t.Fatalf("WaitReady %+v, %v", res, err)
	}
}

func TestStreamingProgressDelivered(t *testing.T) {
	events := []api.ProgressEvent{{Phase: "download", Current: 10, Total: 100}, {Phase: "download", Current: 100, Total: 100}, {Phase: "extract"}}
	c := serveAPI(t, &fakeKernels{events: events})
	var got []api.ProgressEvent
	e, err := c.KernelPull(context.Background(), api.KernelPullParams{Name: "debian-12-cloud"}, func(ev api.ProgressEvent) { got = append(got, ev) })
	if err != nil || e.Name != "debian-12-cloud" || e.KernelVersion != "6.1" {
		t.Fatalf("pull %+v, %v", e, err)
	}
	if len(got) != len(events) {
		t.Fatalf("progress %+v, want %+v", got, events)
	}
	for i := range events {
		if got[i] != events[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], events[i])
		}
	}
	// No progress callback: the result still arrives.
	if _, err := c.KernelPull(context.Background(), api.KernelPullParams{Name: "x"}, nil); err != nil {
		t.Fatalf("pull without progress: %v", err)
	}
}

func TestStreamingErrorIsSentinel(t *testing.T) {
	c := serveAPI(t, &fakeKernels{events: []api.ProgressEvent{{Phase: "download"}},
		err: api.Errorf(api.ErrConflict, "kernel k is being pulled")})
	n := 0
	_, err := c.KernelPull(context.Background(), api.KernelPullParams{Name: "k"}, func(api.ProgressEvent) { n++ })
	if !errors.Is(err, api.ErrConflict) || err.Error() != "kernel k is being pulled" || n != 1 {
		t.Fatalf("error %v after %d events", err, n)
	}
}

func TestStreamCutShortIsAnError(t *testing.T) {
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		json.NewEncoder(w).Encode(api.StreamLine{Progress: &api.ProgressEvent{Phase: "download"}})
	}))
	_, err := c.KernelPull(context.Background(), api.KernelPullParams{Name: "k"}, nil)
	if err == nil || !strings.Contains(err.Error(), "before sending a result") {
		t.Fatalf("cut stream: %v", err)
	}
}
