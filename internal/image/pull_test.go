package image

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"banger/internal/api"
)

var baseLayer = []entry{
	dirE("bin/", 0o755), dirE("etc/", 0o755),
	fileE("bin/busybox", "#!fake busybox\n", 0o4755),
	linkE("bin/sh", "busybox"),
	fileE("etc/os-release", "ID=test\n", 0o644),
}

func ownedFile(name, body string, mode int64, uid, gid int) entry {
	e := fileE(name, body, mode)
	e.hdr.Uid, e.hdr.Gid = uid, gid
	return e
}

func TestPullBuildsExt4AndCachesBlobs(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	requireTool(t, "debugfs")
	reg := newTestRegistry(t)
	imgA := image(t, baseLayer, []entry{dirE("home/", 0o755), ownedFile("home/notes", "hello\n", 0o640, 1000, 1001), fileE("etc/.wh.os-release", "", 0)})
	imgB := image(t, baseLayer, []entry{fileE("etc/motd", "b\n", 0o644)})
	refA := reg.push(t, "team/alpha:1.0", imgA)
	refB := reg.push(t, "team/beta:2", imgB)
	svc, st, state := newTestService(t)
	ctx := context.Background()
	caller := Caller{UID: 1000, GID: 1000}

	reg.blobGets.Store(0)
	reg.manifestGets.Store(0)
	var phases []string
	progress := func(ev api.ProgressEvent) { phases = append(phases, ev.Phase) }
	rec, err := svc.Pull(ctx, api.ImagePullParams{Ref: refA, KernelRef: "debian-12-cloud"}, caller, progress)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if rec.Name != "alpha-1.0" || !rec.Managed || rec.Source != "pull" || rec.KernelRef != "debian-12-cloud" || rec.OwnerUID != 1000 {
		t.Errorf("record = %+v", rec)
	}
	if d, _ := imgA.Digest(); rec.Digest != d.String() {
		t.Errorf("digest = %s, want %s", rec.Digest, d)
	}
	if len(rec.Cmd) != 1 || rec.Cmd[0] != "/bin/sh" {
		t.Errorf("cmd = %v", rec.Cmd)
	}
	if rec.RootfsPath != filepath.Join(state, "images", rec.ID, "rootfs.ext4") {
		t.Errorf("rootfs path = %s", rec.RootfsPath)
	}
	if fi, err := os.Stat(rec.RootfsPath); err != nil || fi.Size() != rec.SizeBytes {
		t.Errorf("rootfs size: %v %v (record %d)", fi, err, rec.SizeBytes)
	}
	for _, want := range []string{"resolve", "fetch", "apply", "mkfs"} {
		if !strings.Contains(strings.Join(phases, " "), want) {
			t.Errorf("no %q progress event in %v", want, phases)
		}
	}
	if got := reg.blobGets.Load(); got != 3 {
		t.Errorf("first pull fetched %d blobs, want 3 (config + 2 layers)", got)
	}
	if got := debugfsCat(t, rec.RootfsPath, "/home/notes"); got != "hello\n" {
		t.Errorf("notes = %q", got)
	}
	if s := debugfsStatT(t, rec.RootfsPath, "/home/notes"); s.UID != 1000 || s.GID != 1001 || s.Mode&0o7777 != 0o640 {
		t.Errorf("notes stat = %+v", s)
	}
	if s := debugfsStatT(t, rec.RootfsPath, "/bin/busybox"); s.Mode&0o7777 != 0o4755 || s.UID != 0 {
		t.Errorf("busybox stat = %+v", s)
	}
	if s := debugfsStatT(t, rec.RootfsPath, "/bin/sh"); s.Type != "symlink" {
		t.Errorf("/bin/sh = %+v", s)
	}
	if s := debugfsStatT(t, rec.RootfsPath, "/"); s.UID != 0 || s.Mode&0o777 != 0o755 {
		t.Errorf("root dir = %+v", s)
	}
	if debugfsExists(t, rec.RootfsPath, "/etc/os-release") {
		t.Error("whiteout did not remove /etc/os-release")
	}

	// Same tag again: only the manifest HEAD, no blob and no manifest GET.
	reg.blobGets.Store(0)
	reg.manifestGets.Store(0)
	again, err := svc.Pull(ctx, api.ImagePullParams{Ref: refA, Name: "alpha-again"}, caller, nil)
	if err != nil {
		t.Fatalf("second pull: %v", err)
	}
	if n, m := reg.blobGets.Load(), reg.manifestGets.Load(); n != 0 || m != 0 {
		t.Errorf("second pull: %d blob GETs, %d manifest GETs; want 0 and 0", n, m)
	}
	if again.Digest != rec.Digest || again.ID == rec.ID {
		t.Errorf("second record = %+v", again)
	}

	// Another image sharing the base layer fetches its config and top layer only.
	reg.blobGets.Store(0)
	if _, err := svc.Pull(ctx, api.ImagePullParams{Ref: refB}, caller, nil); err != nil {
		t.Fatalf("pull beta: %v", err)
	}
	if got := reg.blobGets.Load(); got != 2 {
		t.Errorf("beta pull fetched %d blobs, want 2 (base layer cached)", got)
	}

	// Name taken.
	_, err = svc.Pull(ctx, api.ImagePullParams{Ref: refA, Name: "alpha-1.0"}, caller, nil)
	if !errors.Is(err, api.ErrExists) {
		t.Errorf("name taken: err = %v, want ErrExists", err)
	}
	imgs, _ := st.ListImages(ctx)
	if len(imgs) != 3 {
		t.Errorf("%d images recorded, want 3", len(imgs))
	}

	// Delete: refused while used, then removes the directory but keeps blobs.
	st.users[rec.ID] = []string{"vm-one", "vm-two"}
	if err := svc.Delete(ctx, rec.Name); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "vm-one, vm-two") {
		t.Errorf("delete in use: %v", err)
	}
	delete(st.users, rec.ID)
	if err := svc.Delete(ctx, rec.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, "images", rec.ID)); !os.IsNotExist(err) {
		t.Errorf("image directory still there: %v", err)
	}
	if _, err := svc.Show(ctx, rec.Name); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("show deleted: %v", err)
	}
	if blob, _ := svc.OCI().BlobPath(layerDigest(t, imgA, 0)); !fileExists(blob) {
		t.Error("delete removed a cached blob")
	}
	assertClean(t, state, again.ID, imgsID(imgs, "beta-2"))
}

func imgsID(imgs []modelImage, name string) string {
	for _, i := range imgs {
		if i.Name == name {
			return i.ID
		}
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestPullIndexPicksAmd64(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	reg := newTestRegistry(t)
	arm := imageFor(t, "arm64", []entry{fileE("arch", "arm64", 0o644), fileE("bin/sh", "sh", 0o755)})
	amd := imageFor(t, "amd64", []entry{fileE("arch", "amd64", 0o644), fileE("bin/sh", "sh", 0o755)})
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	ref := reg.pushIndex(t, "multi/arch:latest", idx)
	svc, _, _ := newTestService(t)
	rec, err := svc.Pull(context.Background(), api.ImagePullParams{Ref: ref}, Caller{}, nil)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if got := debugfsCat(t, rec.RootfsPath, "/arch"); got != "amd64" {
		t.Errorf("picked %q, want amd64", got)
	}
	if d, _ := amd.Digest(); rec.Digest != d.String() {
		t.Errorf("digest = %s, want the amd64 manifest %s", rec.Digest, d)
	}

	// An arm64-only image is refused.
	armRef := reg.push(t, "only/arm:1", arm)
	if _, err := svc.Pull(context.Background(), api.ImagePullParams{Ref: armRef}, Caller{}, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("arm64 image: err = %v, want ErrInvalid", err)
	}
}

func TestPullFailuresLeaveNothing(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = byte(i*7 + i/4096)
	}
	cases := map[string]func(w http.ResponseWriter, r *http.Request){
		"registry dies mid-pull": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5000000")
			w.WriteHeader(http.StatusOK)
			w.Write(big[:1<<20])
			panic(http.ErrAbortHandler)
		},
		"corrupt layer": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.Write(big[:64<<10])
		},
	}
	for name, sabotage := range cases {
		t.Run(name, func(t *testing.T) {
			reg := newTestRegistry(t)
			img := image(t, baseLayer, []entry{fileE("big", string(big), 0o644)})
			ref := reg.push(t, "fault/img:1", img)
			reg.sabotage[strings.TrimPrefix(layerDigest(t, img, 1), "")] = sabotage
			svc, st, state := newTestService(t)
			_, err := svc.Pull(context.Background(), api.ImagePullParams{Ref: ref}, Caller{}, nil)
			if err == nil {
				t.Fatal("pull succeeded against a broken registry")
			}
			t.Logf("error: %v", err)
			if imgs, _ := st.ListImages(context.Background()); len(imgs) != 0 {
				t.Errorf("image rows left: %v", imgs)
			}
			assertClean(t, state)
			if p, _ := svc.OCI().BlobPath(layerDigest(t, img, 1)); fileExists(p) {
				t.Error("broken blob was cached")
			}
		})
	}
}

func TestPullErrors(t *testing.T) {
	reg := newTestRegistry(t)
	reg.user, reg.pass = "alice", "s3cret"
	ref := reg.push(t, "private/img:1", image(t, baseLayer))
	svc, _, state := newTestService(t)
	ctx := context.Background()

	home := t.TempDir()
	writeDockerConfig(t, home, reg.host(), "alice", "wrong")
	_, err := svc.Pull(ctx, api.ImagePullParams{Ref: ref}, Caller{Home: home}, nil)
	if !errors.Is(err, api.ErrPermission) {
		t.Errorf("wrong credentials: err = %v, want ErrPermission", err)
	}
	_, err = svc.Pull(ctx, api.ImagePullParams{Ref: ref}, Caller{}, nil)
	if !errors.Is(err, api.ErrPermission) {
		t.Errorf("no credentials: err = %v, want ErrPermission", err)
	}
	writeDockerConfig(t, home, reg.host(), "alice", "s3cret")
	svc.authz = denyUnder{dir: home}
	if _, err := svc.Pull(ctx, api.ImagePullParams{Ref: ref}, Caller{Home: home}, nil); !errors.Is(err, api.ErrPermission) {
		t.Errorf("unreadable docker config: err = %v, want ErrPermission", err)
	}
	svc.authz = denyUnder{}
	if requireRootQuiet() && hasTool("mkfs.ext4") {
		if _, err := svc.Pull(ctx, api.ImagePullParams{Ref: ref}, Caller{Home: home}, nil); err != nil {
			t.Errorf("right credentials: %v", err)
		}
	}
	_, err = svc.Pull(ctx, api.ImagePullParams{Ref: reg.host() + "/private/nope:1", Name: "nope"}, Caller{Home: home}, nil)
	if !errors.Is(err, api.ErrNotFound) {
		t.Errorf("unknown ref: err = %v, want ErrNotFound", err)
	}
	for _, bad := range []api.ImagePullParams{{Ref: ""}, {Ref: "UPPER CASE"}, {Ref: ref, Name: "Bad Name"}, {Ref: ref, Name: "x", SizeBytes: -1}} {
		if _, err := svc.Pull(ctx, bad, Caller{}, nil); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("pull %+v: err = %v, want ErrInvalid", bad, err)
		}
	}
	assertClean(t, state, listIDs(t, svc)...)
}

func listIDs(t *testing.T, svc *Service) []string {
	imgs, err := svc.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range imgs {
		ids = append(ids, i.ID)
	}
	return ids
}
