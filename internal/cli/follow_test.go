package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls until buf holds want (bounded, not a timing assertion).
func waitFor(t *testing.T, buf *lockedBuffer, want string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if buf.String() == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("followed output %q, want %q", buf.String(), want)
}

// vm logs -f keeps following across the daemon's rotation of the log.
func TestFollowFileAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serial.log")
	if err := os.WriteFile(path, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var buf lockedBuffer
	done := make(chan error, 1)
	go func() { done <- followFile(ctx, path, &buf) }()
	waitFor(t, &buf, "one\n")

	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Rotate: the old file gets a last line after the rename, then a new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	f.WriteString("two\n")
	f.Close()
	if err := os.WriteFile(path, []byte("three\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &buf, "one\ntwo\nthree\n")
	g, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	g.WriteString("four\n")
	g.Close()
	waitFor(t, &buf, "one\ntwo\nthree\nfour\n")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "three") != 1 {
		t.Errorf("a line was printed twice: %q", buf.String())
	}
}
