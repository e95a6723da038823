package image

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"banger/internal/api"
	"banger/internal/testutil"
)

func TestEndToEndDockerRegistry(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	requireTool(t, "debugfs")
	addr := testutil.StartDockerRegistry(t)
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
