package guest

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/guest/agenttest"
)

func TestProbe(t *testing.T) {
	g := startGuest(t)
	c := g.dial(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "empty"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"missing": proto.PathAbsent, "empty": proto.PathEmpty,
		"file": proto.PathNonEmpty, "link": proto.PathNonEmpty, ".": proto.PathNonEmpty} {
		p, err := c.Probe(testCtx(t), filepath.Clean(filepath.Join(dir, name)))
		if err != nil || p.State != want {
			t.Errorf("probe %s: %+v, %v; want %s", name, p, err, want)
		}
	}
	for _, bad := range []string{"relative", "/", dir + "/../x", ""} {
		if _, err := c.Probe(testCtx(t), bad); err == nil || !strings.Contains(err.Error(), "path") {
			t.Errorf("probe %q: %v, want a refusal", bad, err)
		}
	}
}

// tarOf is a tar of name → content.
func tarOf(t *testing.T, files map[string]string) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestExtractArchiveRemove(t *testing.T) {
	g := startGuest(t)
	c := g.dial(t)
	dir := filepath.Join(t.TempDir(), "ws")
	if err := os.MkdirAll(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := c.Extract(testCtx(t), dir, tarOf(t, map[string]string{"a.txt": "hello\n", "sub/b.txt": "b", ".git/HEAD": "x"}), false)
	if err != nil || sum.Files != 3 || sum.Bytes != 8 {
		t.Fatalf("extract: %+v, %v", sum, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "old")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("extract did not replace the folder")
	}
	var out bytes.Buffer
	if err := c.Archive(testCtx(t), dir, []string{".git"}, nil, &out); err != nil {
		t.Fatalf("archive: %v", err)
	}
	var names []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != "a.txt,sub/,sub/b.txt" {
		t.Fatalf("archive holds %s", got)
	}
	if err := c.Archive(testCtx(t), filepath.Join(dir, "a.txt"), nil, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("archive of a file: %v", err)
	}
	if err := c.Remove(testCtx(t), dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("remove left the folder")
	}
	// A path the agent refuses: its answer is the error, whatever was sent.
	if _, err := c.Extract(testCtx(t), "relative/ws", tarOf(t, map[string]string{"a": strings.Repeat("x", 1<<20)}), false); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("extract to a relative path: %v", err)
	}
	// The client stays usable after every op.
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestExtractSourceFailure: when the host's own stream fails, extract
// fails (the guest's view of a cut archive cannot be trusted).
func TestExtractSourceFailure(t *testing.T) {
	g := startGuest(t)
	c := g.dial(t)
	dir := filepath.Join(t.TempDir(), "ws")
	src := io.MultiReader(tarOf(t, map[string]string{"a": "x"}), errReader{})
	if _, err := c.Extract(testCtx(t), dir, src, false); err == nil || !strings.Contains(err.Error(), "source broke") {
		t.Fatalf("extract of a broken stream: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("source broke") }

// TestArchiveCutByGuest: a guest that says yes and then sends part of an
// archive and no exit status is refused, however the stream looks.
func TestArchiveCutByGuest(t *testing.T) {
	part := tarOf(t, map[string]string{"a": "x"}).Bytes()[:512]
	c := dialFake(t, agenttest.Options{Handle: func(w io.Writer, _ []byte, _ <-chan struct{}) {
		io.WriteString(w, `{"ok":true}`+"\n")
		w.Write(part)
	}})
	if err := c.Archive(testCtx(t), "/ws", nil, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "agent archive") {
		t.Fatalf("archive cut by the guest: %v", err)
	}
	c = dialFake(t, agenttest.Options{Handle: agenttest.Never})
	err := c.Archive(testCtx(t), "/ws", nil, nil, io.Discard)
	wantTimeout(t, "archive", err)
	c = dialFake(t, agenttest.Options{Handle: reply(`{"ok":true,"result":{"state":"maybe"}}`)})
	if _, err := c.Probe(testCtx(t), "/ws"); err == nil || !strings.Contains(err.Error(), "unknown state") {
		t.Fatalf("probe with a made-up state: %v", err)
	}
	c = dialFake(t, agenttest.Options{Handle: reply(`{"ok":true,"result":{"files":-1}}`)})
	if _, err := c.Extract(testCtx(t), "/ws", tarOf(t, nil), false); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("extract with a negative count: %v", err)
	}
}

// TestArchiveUnchanged: the unchanged bounds cross the protocol; a file
// the guest left alone since the extraction comes as a header only.
func TestArchiveUnchanged(t *testing.T) {
	g := startGuest(t)
	c := g.dial(t)
	dir := filepath.Join(t.TempDir(), "ws")
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, name := range []string{"a.txt", "sub/b.txt"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 2, ModTime: mtime, Typeflag: tar.TypeReg})
		tw.Write([]byte("x\n"))
	}
	tw.Close()
	sum, err := c.Extract(testCtx(t), dir, &in, false)
	if err != nil || sum.DoneUnixNano == 0 {
		t.Fatalf("extract: %+v, %v", sum, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub/b.txt"), []byte("y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(dir, "sub/b.txt"), mtime, mtime) // the change time still tells
	var out bytes.Buffer
	u := &proto.Unchanged{MtimeUnixNano: mtime.UnixNano(), CtimeUnixNano: sum.DoneUnixNano}
	if err := c.Archive(testCtx(t), dir, nil, u, &out); err != nil {
		t.Fatalf("archive: %v", err)
	}
	got := map[string]string{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got[h.Name] = string(body) + "|" + h.PAXRecords[proto.PAXUnchanged]
	}
	if got["a.txt"] != "|2" || got["sub/b.txt"] != "y\n|" {
		t.Fatalf("archive holds %q; want a.txt as a header of size 2, sub/b.txt in full", got)
	}
}
