package kernel

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"banger/internal/api"
	"banger/internal/initramfs"
)

// ignitePush builds an Ignite-style kernel image (boot/vmlinux plus
// lib/modules/VERSION) and pushes it to an in-process registry; it returns
// the reference and the kernel image bytes.
func ignitePush(t *testing.T) (string, []byte) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("needs gcc to build an ELF test kernel")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "k.c")
	if err := os.WriteFile(src, []byte(`const char b[] = "Linux version 5.10.51-banger (x@y) #1 SMP\n"; int main(void) { return b[0]; }`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-o", filepath.Join(dir, "k"), src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v: %s", err, out)
	}
	vmlinux, err := os.ReadFile(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	mods := "lib/modules/5.10.51-banger/"
	files := []struct {
		name string
		data []byte
	}{
		{"boot/vmlinux", vmlinux},
		{mods + "modules.dep", []byte("kernel/fs/overlayfs/overlay.ko:\n")},
		{mods + "modules.builtin", []byte("kernel/drivers/virtio/virtio_mmio.ko\nkernel/drivers/block/virtio_blk.ko\nkernel/fs/ext4/ext4.ko\n")},
		{mods + "kernel/fs/overlayfs/overlay.ko", []byte("not really a module")},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/ignite-kernel:5.10.51"
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref, vmlinux
}

func TestPullOCI(t *testing.T) {
	ref, vmlinux := ignitePush(t)
	s, st, dir := newTestService(t, nil)
	writeCatalog(t, dir, `{"entries":[{"name":"ignite-test","kind":"oci","ref":"`+ref+`","arch":"x86_64"}]}`)
	ctx := context.Background()
	e, err := s.Pull(ctx, api.KernelPullParams{Name: "ignite-test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(e.KernelPath)
	if err != nil || !bytes.Equal(got, vmlinux) || filepath.Base(e.KernelPath) != "vmlinux" {
		t.Fatalf("kernel %s: %d bytes, %v; want the pushed vmlinux", e.KernelPath, len(got), err)
	}
	if e.KernelVersion != "5.10.51-banger" || !strings.HasPrefix(e.Source, "oci:") || !strings.Contains(e.Source, "@sha256:") {
		t.Fatalf("entry = %+v", e)
	}
	_, cp, err := s.BootFiles(ctx, e.Name)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cp)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := initramfs.List(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var order string
	for _, en := range ents {
		if en.Name == initramfs.OrderFile {
			order = string(en.Data)
		}
	}
	if order != "lib/modules/5.10.51-banger/kernel/fs/overlayfs/overlay.ko\n" {
		t.Fatalf("modules order = %q", order)
	}
	if _, err := os.Stat(filepath.Join(dir, ".oci-cache")); err != nil {
		t.Fatalf("blob cache: %v", err)
	}
	os.RemoveAll(filepath.Join(dir, ".oci-cache"))
	assertEmpty(t, dir, st, "ignite-test")

	// A wrong sha256 in the catalog: refused, nothing stored.
	writeCatalog(t, dir, `{"entries":[{"name":"ignite-bad","kind":"oci","ref":"`+ref+`","sha256":"`+strings.Repeat("ab", 32)+`"}]}`)
	if _, err := s.Pull(ctx, api.KernelPullParams{Name: "ignite-bad"}, nil); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("sha256 mismatch: got %v", err)
	}
	os.RemoveAll(filepath.Join(dir, ".oci-cache"))
	assertEmpty(t, dir, st, "ignite-test")
}
