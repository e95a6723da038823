package image

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"banger/internal/api"
	"banger/internal/oci"
	"banger/internal/testutil"
)

// sparseLayerFile writes a layer holding etc/ok and "big", a GNU sparse 1.0
// (PAX) member of realSize bytes with 4 KiB of data at 1 GiB.
func sparseLayerFile(t *testing.T, realSize int64) string {
	t.Helper()
	data := testutil.SparseTar(
		testutil.PlainMember{Name: "etc/ok", Body: []byte("fine\n")},
		testutil.SparseMember{Name: "big", RealSize: realSize, Offset: 1 << 30, Data: bytes.Repeat([]byte("x"), 4096)},
	)
	p := filepath.Join(t.TempDir(), "sparse-layer.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// duBytes is the disk space a tree really takes.
func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestApplySparseMember: a sparse member is written sparse, at its real
// size, and counts at its real size against the limit.
func TestApplySparseMember(t *testing.T) {
	requireRoot(t)
	layer := oci.Layer{Digest: "sparse", Path: sparseLayerFile(t, 3<<30)}
	root := t.TempDir()
	if err := ApplyLayers(context.Background(), []oci.Layer{layer}, root); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(root, "big")
	fi, err := os.Stat(big)
	if err != nil || fi.Size() != 3<<30 {
		t.Fatalf("big: %v, %v", fi, err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Blocks*512 > 1<<20 {
		t.Fatalf("3 GiB sparse member with 4 KiB of data took %d bytes", st.Blocks*512)
	}
	f, _ := os.Open(big)
	got := make([]byte, 4096)
	f.ReadAt(got, 1<<30)
	f.Close()
	if !bytes.Equal(got, bytes.Repeat([]byte("x"), 4096)) {
		t.Fatal("data block lost")
	}

	root2 := t.TempDir()
	err = applyLayers(context.Background(), []oci.Layer{layer}, root2, sizeLimit{max: 1 << 30}, nil)
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "expands to more than 1.0 GiB") {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root2, "big")); err == nil {
		t.Fatal("the refused member was written")
	}
}

// TestImportSparseMember imports a small docker-save archive whose layer
// holds a 3 GiB sparse member: over a 1 GiB limit it is refused and leaves
// nothing; within the limit the import writes only a few MiB.
func TestImportSparseMember(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	requireTool(t, "debugfs")
	l, err := tarball.LayerFromFile(sparseLayerFile(t, 3<<30))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(image(t, baseLayer), l)
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(t.TempDir(), "saved.tar")
	tag, _ := name.NewTag("example.com/sparse:1")
	if err := tarball.WriteToFile(saved, tag, img); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(saved); fi.Size() > 1<<20 {
		t.Fatalf("archive is %d bytes", fi.Size())
	}

	svc, st, state := newTestService(t)
	ctx := context.Background()
	svc.SetMaxImageBytes(1 << 30)
	_, err = svc.Import(ctx, saved, "limited", Caller{}, nil)
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "expands to more than 1.0 GiB") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("over the limit: %v", err)
	}
	if imgs, _ := st.ListImages(ctx); len(imgs) != 0 {
		t.Fatalf("rows left: %v", imgs)
	}
	assertClean(t, state)

	svc.SetMaxImageBytes(0)
	rec, err := svc.Import(ctx, saved, "sparse", Caller{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := debugfsStatT(t, rec.RootfsPath, "/big"); s.Size != 3<<30 {
		t.Fatalf("big in the image: %+v", s)
	}
	used := duBytes(t, state)
	t.Logf("state directory after the import: %d bytes on disk", used)
	if used > 16<<20 {
		t.Fatalf("importing a small archive with a 3 GiB sparse member took %d bytes of disk", used)
	}
}
