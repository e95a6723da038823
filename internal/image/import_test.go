package image

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"banger/internal/api"
	"banger/internal/authz"
)

func TestImportLayoutAndTarballs(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	requireTool(t, "debugfs")
	img := image(t, baseLayer, []entry{fileE("etc/motd", "imported\n", 0o600), hardE("etc/motd2", "etc/motd")})
	dir := t.TempDir()

	layoutDir := filepath.Join(dir, "layout")
	p, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "example.com/tools/box:7"})); err != nil {
		t.Fatal(err)
	}
	layoutTar := filepath.Join(dir, "layout.tar")
	tarDir(t, layoutDir, layoutTar)
	dockerTar := filepath.Join(dir, "saved.tar")
	tag, _ := name.NewTag("example.com/tools/saved:v2")
	if err := tarball.WriteToFile(dockerTar, tag, img); err != nil {
		t.Fatal(err)
	}

	svc, _, state := newTestService(t)
	ctx := context.Background()
	want := map[string]string{layoutDir: "box-7", layoutTar: "from-tar", dockerTar: "saved-v2"}
	for _, path := range []string{layoutDir, layoutTar, dockerTar} {
		n := ""
		if path == layoutTar {
			n = "from-tar"
		}
		rec, err := svc.Import(ctx, path, n, Caller{UID: 5}, nil)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		if rec.Name != want[path] || rec.Source != "import" || !rec.Managed || rec.SourceRef != path {
			t.Errorf("import %s: record %+v", path, rec)
		}
		if got := debugfsCat(t, rec.RootfsPath, "/etc/motd"); got != "imported\n" {
			t.Errorf("import %s: motd = %q", path, got)
		}
		a, b := debugfsStatT(t, rec.RootfsPath, "/etc/motd"), debugfsStatT(t, rec.RootfsPath, "/etc/motd2")
		if a.Mode&0o777 != 0o600 || b.Size != a.Size {
			t.Errorf("import %s: motd %+v motd2 %+v", path, a, b)
		}
	}
	if d, _ := img.Digest(); !strings.HasPrefix(d.String(), "sha256:") {
		t.Fatal("bad digest")
	}
	assertClean(t, state, listIDs(t, svc)...)

	// Bad inputs.
	junk := filepath.Join(dir, "junk.tar")
	os.WriteFile(junk, []byte("not a tar at all, not at all"), 0o644)
	if _, err := svc.Import(ctx, junk, "junk", Caller{}, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("junk: err = %v, want ErrInvalid", err)
	}
	if _, err := svc.Import(ctx, filepath.Join(dir, "missing.tar"), "m", Caller{}, nil); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("missing: err = %v, want ErrNotFound", err)
	}
	if _, err := svc.Import(ctx, "relative.tar", "r", Caller{}, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("relative: err = %v, want ErrInvalid", err)
	}
	if _, err := svc.Import(ctx, dockerTar, "saved-v2", Caller{}, nil); !errors.Is(err, api.ErrExists) {
		t.Errorf("taken: err = %v, want ErrExists", err)
	}
	svc.authz = denyUnder{dir: dir}
	if _, err := svc.Import(ctx, dockerTar, "other", Caller{}, nil); !errors.Is(err, api.ErrPermission) {
		t.Errorf("unreadable: err = %v, want ErrPermission", err)
	}
	assertClean(t, state, listIDs(t, svc)...)
}

// tarDir writes the regular files and directories of dir into a tar file.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRegister(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	requireTool(t, "debugfs")
	dir := t.TempDir()
	good := mkext4(t, dir, "good.ext4", func(root string) {
		os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
		os.WriteFile(filepath.Join(root, "usr/bin/dash"), []byte("sh"), 0o755)
		os.Symlink("usr/bin", filepath.Join(root, "bin"))
		os.Symlink("dash", filepath.Join(root, "usr/bin/sh"))
	})
	empty := mkext4(t, dir, "empty.ext4", func(string) {})
	notExt4 := filepath.Join(dir, "plain.img")
	os.WriteFile(notExt4, make([]byte, 4096), 0o644)
	kernel := filepath.Join(dir, "vmlinux")
	os.WriteFile(kernel, []byte("kernel"), 0o644)
	before, _ := os.ReadFile(good)

	svc, _, _ := newTestService(t)
	ctx := context.Background()
	rec, err := svc.Register(ctx, api.ImageRegisterParams{RootfsPath: good, Docker: true}, Caller{UID: 7, GID: 8})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if rec.Name != "good" || !rec.Managed || !rec.Docker || rec.OwnerUID != 7 ||
		rec.Source != "register" || rec.SourceRef != good || rec.RootfsPath == good {
		t.Errorf("record = %+v", rec)
	}
	if copied, err := os.ReadFile(rec.RootfsPath); err != nil || string(copied) != string(before) {
		t.Fatalf("managed copy differs from the registered file: %v", err)
	}
	if err := svc.Delete(ctx, "good"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	after, err := os.ReadFile(good)
	if err != nil || string(after) != string(before) {
		t.Fatal("delete touched a registered rootfs")
	}
	if _, err := os.Stat(rec.RootfsPath); !os.IsNotExist(err) {
		t.Fatalf("delete left the managed copy: %v", err)
	}

	bad := map[string]struct {
		p    api.ImageRegisterParams
		kind error
	}{
		"no rootfs":   {api.ImageRegisterParams{Name: "x"}, api.ErrInvalid},
		"not ext4":    {api.ImageRegisterParams{Name: "x", RootfsPath: notExt4}, api.ErrInvalid},
		"no userland": {api.ImageRegisterParams{Name: "x", RootfsPath: empty}, api.ErrInvalid},
		"missing":     {api.ImageRegisterParams{Name: "x", RootfsPath: filepath.Join(dir, "nope")}, api.ErrNotFound},
		"relative":    {api.ImageRegisterParams{Name: "x", RootfsPath: "good.ext4"}, api.ErrInvalid},
		"bad name":    {api.ImageRegisterParams{Name: "-x", RootfsPath: good}, api.ErrInvalid},
		// Images boot stored kernels only: a kernel file would never be used.
		"kernel path": {api.ImageRegisterParams{Name: "x", RootfsPath: good, KernelPath: kernel}, api.ErrInvalid},
		"initrd path": {api.ImageRegisterParams{Name: "x", RootfsPath: good, InitrdPath: kernel}, api.ErrInvalid},
		"modules dir": {api.ImageRegisterParams{Name: "x", RootfsPath: good, ModulesDir: dir}, api.ErrInvalid},
	}
	for name, c := range bad {
		if _, err := svc.Register(ctx, c.p, Caller{}); !errors.Is(err, c.kind) {
			t.Errorf("%s: err = %v, want %v", name, err, c.kind)
		}
	}
	if imgs, _ := svc.List(ctx); len(imgs) != 0 {
		t.Errorf("rows left: %v", imgs)
	}
}

// mkext4 makes a small ext4 file from a directory filled by fill.
func mkext4(t *testing.T, dir, fileName string, fill func(root string)) string {
	t.Helper()
	root := filepath.Join(dir, fileName+".d")
	os.Mkdir(root, 0o755)
	fill(root)
	out := filepath.Join(dir, fileName)
	if b, err := exec.Command("mkfs.ext4", "-q", "-d", root, out, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v: %s", err, b)
	}
	return out
}

// A registered file is copied under the one open made as the caller: a
// symlink put in its place afterwards (to a file only root can read) never
// reaches a VM, whose disks come from the managed copies.
func TestRegisterSymlinkSwapAfterwards(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	requireTool(t, "debugfs")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	fill := func(root string) {
		os.MkdirAll(filepath.Join(root, "bin"), 0o755)
		os.WriteFile(filepath.Join(root, "bin/sh"), []byte("sh"), 0o755)
	}
	rootfs := mkext4(t, dir, "mine.ext4", fill)
	seed := mkext4(t, dir, "seed.ext4", func(string) {})
	secret := mkext4(t, dir, "secret.ext4", func(root string) {
		fill(root)
		os.WriteFile(filepath.Join(root, "secret"), []byte("root only"), 0o600)
	})
	for _, f := range []string{rootfs, seed} {
		os.Chmod(f, 0o644)
	}
	os.Chmod(secret, 0o600)
	wantRootfs, _ := os.ReadFile(rootfs)
	wantSeed, _ := os.ReadFile(seed)

	svc, _, _ := newTestService(t)
	svc.authz = authz.Checker{}
	nobody := authz.WithCaller(context.Background(), authz.Caller{UID: 65534, GID: 65534})
	// Registering the root-only file directly is refused.
	if _, err := svc.Register(nobody, api.ImageRegisterParams{Name: "direct", RootfsPath: secret}, Caller{UID: 65534}); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("nobody registering a root-only file: %v", err)
	}
	_, err := svc.Register(nobody, api.ImageRegisterParams{Name: "mine", RootfsPath: rootfs, WorkSeedPath: seed}, Caller{UID: 65534, GID: 65534})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	for _, f := range []string{rootfs, seed} {
		os.Remove(f)
		if err := os.Symlink(secret, f); err != nil {
			t.Fatal(err)
		}
	}
	img, err := svc.Show(nobody, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if img.RootfsPath == rootfs || img.WorkSeedPath == seed || !strings.HasPrefix(img.RootfsPath, svc.stateDir) {
		t.Fatalf("the image still names the caller's files: %+v", img)
	}
	gotRootfs, _ := os.ReadFile(img.RootfsPath)
	gotSeed, _ := os.ReadFile(img.WorkSeedPath)
	if string(gotRootfs) != string(wantRootfs) || string(gotSeed) != string(wantSeed) {
		t.Fatal("the image's disks are not the registered content")
	}
	if got := debugfsCat(t, img.RootfsPath, "/secret"); strings.Contains(got, "root only") {
		t.Fatal("root-only content reached the image")
	}
}
