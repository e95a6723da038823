// Package testutil holds helpers shared by tests that use real services.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartDockerRegistry runs Debian's docker-registry on a free loopback port
// with storage in a temp dir and returns "127.0.0.1:PORT".
func StartDockerRegistry(t testing.TB) string {
	t.Helper()
	addr, _ := StartDockerRegistryWithData(t)
	return addr
}

// StartDockerRegistryWithData is StartDockerRegistry that also returns the
// registry's storage root (blobs are under docker/registry/v2/blobs).
func StartDockerRegistryWithData(t testing.TB) (addr, dataDir string) {
	t.Helper()
	bin := "/usr/bin/docker-registry"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("docker-registry not installed (apt-get install docker-registry)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", logs.String())
		}
	})
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr, filepath.Join(dir, "data")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("docker-registry did not come up")
	return "", ""
}
