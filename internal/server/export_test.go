package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"banger/internal/api"
	"banger/internal/client"
)

// serveSocket serves svc on a Unix socket and returns a client for it.
func serveSocket(t testing.TB, svc Services) *client.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: New(svc, slog.New(slog.DiscardHandler))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return client.New(sock)
}

// The patch travels as data lines of the streamed response, in order; the
// one-body form refuses a patch too large to hold.
func TestWorkspaceExportStreams(t *testing.T) {
	f := &fakes{}
	patch := make([]byte, 3*chunkSize+12345)
	for i := range patch {
		patch[i] = byte(i * 7)
	}
	f.workspaces.patch = patch
	c := serveSocket(t, f.services())
	var got bytes.Buffer
	res, err := c.WorkspaceExportTo(context.Background(), api.WorkspaceExportParams{IDOrName: "v", GuestPath: "/root/r"}, &got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), patch) || res.GuestPath != "/root/r" || len(res.Patch) != 0 {
		t.Fatalf("streamed %d bytes (want %d), result %+v", got.Len(), len(patch), res)
	}
	small, err := c.WorkspaceExport(context.Background(), api.WorkspaceExportParams{IDOrName: "v"})
	if err != nil || !bytes.Equal(small.Patch, patch) {
		t.Fatalf("inline export: %v", err)
	}
	f.workspaces.patch = make([]byte, maxInlinePatch+1)
	if _, err := c.WorkspaceExport(context.Background(), api.WorkspaceExportParams{IDOrName: "v"}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("inline export of a large patch: %v", err)
	}
	if _, err := c.WorkspaceExportTo(context.Background(), api.WorkspaceExportParams{IDOrName: "v"}, io.Discard); err != nil {
		t.Fatalf("streamed export of a large patch: %v", err)
	}
}
