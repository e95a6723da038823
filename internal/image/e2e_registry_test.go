package image

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"banger/internal/api"
)

// startDockerRegistry runs Debian's docker-registry on a free loopback port
// with storage in a temp dir and returns "127.0.0.1:PORT".
func startDockerRegistry(t *testing.T) string {
	t.Helper()
	bin := "/usr/bin/docker-registry"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("docker-registry not installed (apt-get install docker-registry)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
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
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("docker-registry did not come up")
	return ""
}

func TestEndToEndDockerRegistry(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	requireTool(t, "debugfs")
	addr := startDockerRegistry(t)
	img := image(t,
		baseLayer,
		[]entry{dirE("srv/", 0o755), ownedFile("srv/app.conf", "port=80\n", 0o640, 33, 33), dirE("var/", 0o755), dirE("var/cache/", 0o755), fileE("var/cache/junk", "junk", 0o644)},
		[]entry{dirE("var/cache/", 0o755), fileE("var/cache/.wh..wh..opq", "", 0), fileE("var/cache/fresh", "fresh", 0o644), hardE("srv/app.link", "srv/app.conf")},
	)
	ref, err := name.ParseReference(addr+"/e2e/multi:3", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push to docker-registry: %v", err)
	}
	svc, _, state := newTestService(t)
	rec, err := svc.Pull(context.Background(), api.ImagePullParams{Ref: addr + "/e2e/multi:3"}, Caller{}, nil)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if rec.Name != "multi-3" {
		t.Errorf("name = %q", rec.Name)
	}
	if got := debugfsCat(t, rec.RootfsPath, "/srv/app.conf"); got != "port=80\n" {
		t.Errorf("app.conf = %q", got)
	}
	if s := debugfsStatT(t, rec.RootfsPath, "/srv/app.conf"); s.UID != 33 || s.GID != 33 || s.Mode&0o777 != 0o640 {
		t.Errorf("app.conf stat = %+v", s)
	}
	if got := debugfsCat(t, rec.RootfsPath, "/srv/app.link"); got != "port=80\n" {
		t.Errorf("hard link = %q", got)
	}
	if debugfsExists(t, rec.RootfsPath, "/var/cache/junk") {
		t.Error("opaque directory kept a lower-layer file")
	}
	if got := debugfsCat(t, rec.RootfsPath, "/var/cache/fresh"); got != "fresh" {
		t.Errorf("fresh = %q", got)
	}
	if s := debugfsStatT(t, rec.RootfsPath, "/bin/busybox"); s.Mode&0o7777 != 0o4755 {
		t.Errorf("busybox = %+v", s)
	}
	assertClean(t, state, rec.ID)
}
