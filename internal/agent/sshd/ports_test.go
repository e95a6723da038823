package sshd

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"banger/internal/api"
)

const procHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func writeFakeProc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"net/tcp": procHeader +
			"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n" +
			"   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0\n" +
			"   2: 0100007F:0016 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 100 0 0 10 0\n",
		"net/tcp6": procHeader +
			"   0: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1004 1 0 100 0 0 10 0\n",
		"net/udp": procHeader +
			"   0: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1005 2 0 0\n" +
			"   1: 0100007F:A000 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 1006 2 0 0\n",
		"42/comm":    "web-server\n",
		"42/cmdline": "/usr/bin/web-server\x00--port\x008080\x00",
		"7/comm":     "dnsd\n",
		"7/cmdline":  "dnsd\x00",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{"42/fd/3": "socket:[1001]", "42/fd/4": "/dev/null", "7/fd/5": "socket:[1005]", "99/fd/1": "socket:[1001]"}
	for name, target := range links {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	return root // no udp6: a kernel without IPv6 UDP is fine
}

func TestListPortsFakeProc(t *testing.T) {
	got, err := listPorts(writeFakeProc(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []api.VMPort{
		{Proto: "tcp", BindAddress: "0.0.0.0", Port: 22},
		{Proto: "tcp", BindAddress: "::1", Port: 5432},
		{Proto: "tcp", BindAddress: "127.0.0.1", Port: 8080, PID: 42, Process: "web-server", Command: "/usr/bin/web-server --port 8080"},
		{Proto: "udp", BindAddress: "0.0.0.0", Port: 53, PID: 7, Process: "dnsd", Command: "dnsd"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ports:\n got %+v\nwant %+v", got, want)
	}
}

func TestListPortsBadTable(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "net"), 0o755)
	os.WriteFile(filepath.Join(root, "net/tcp"), []byte(procHeader+"   0: ZZ:1F90 00000000:0000 0A 0 0 0 0 0 1 1\n"), 0o644)
	if _, err := listPorts(root); err == nil {
		t.Fatal("a garbled /proc/net/tcp was accepted")
	}
	if _, err := listPorts(t.TempDir()); err == nil {
		t.Fatal("a missing /proc/net/tcp was accepted")
	}
}
