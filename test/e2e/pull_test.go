package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/testutil"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestPullFromRegistryAndBoot pushes a two-layer image (busybox root, then a
// layer that adds a file and whites one out) to Debian's docker-registry,
// pulls it with banger, boots a VM from it, and checks a second pull fetches
// no blob (the layer blobs are deleted from the registry in between).
func TestPullFromRegistryAndBoot(t *testing.T) {
	d := sharedDaemon(t)
	addr, data := testutil.StartDockerRegistryWithData(t)
	base := dirLayer(t, filepath.Join(filepath.Dir(busyboxRootfs(t)), "root"))
	top := tarLayer(t, map[string]string{"etc/motd": "pulled through a registry\n", "bin/.wh.false": ""})
	img, err := mutate.AppendLayers(empty.Image, base, top)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(addr+"/e2e/bb:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}

	d.must(t, "image", "pull", addr+"/e2e/bb:1", "--name", "pulled", "--kernel-ref", "debian-12-cloud")
	d.must(t, "vm", "create", "--name", "from-registry", "--image", "pulled", "--memory", "256", "--vcpus", "1")
	defer d.run("vm", "delete", "--force", "from-registry")
	if out := d.must(t, "vm", "exec", "from-registry", "--", "cat", "/etc/motd"); out != "pulled through a registry\n" {
		t.Fatalf("motd = %q", out)
	}
	if _, _, code := d.run("vm", "exec", "from-registry", "--", "test", "-e", "/bin/false"); code == 0 {
		t.Fatal("whited-out /bin/false is present in the guest")
	}

	// Remove the layer blobs from the registry: a second pull must not need them.
	for _, l := range []v1.Layer{base, top} {
		dg, _ := l.Digest()
		blob := filepath.Join(data, "docker/registry/v2/blobs/sha256", dg.Hex[:2], dg.Hex)
		if err := os.RemoveAll(blob); err != nil {
			t.Fatal(err)
		}
	}
	d.must(t, "image", "pull", addr+"/e2e/bb:1", "--name", "pulled-again", "--kernel-ref", "debian-12-cloud")
	var a, b struct {
		Digest string `json:"digest"`
	}
	d.mustJSON(t, &a, "image", "show", "pulled")
	d.mustJSON(t, &b, "image", "show", "pulled-again")
	if a.Digest == "" || a.Digest != b.Digest {
		t.Fatalf("digests differ: %q %q", a.Digest, b.Digest)
	}
	d.must(t, "image", "delete", "pulled-again")
	if _, errOut, code := d.run("image", "delete", "pulled"); code == 0 || !strings.Contains(errOut, "from-registry") {
		t.Fatalf("deleting an image in use: exit %d, %s", code, errOut)
	}
}

// dirLayer makes an uncompressed-then-gzipped layer of a folder.
func dirLayer(t *testing.T, dir string) v1.Layer {
	t.Helper()
	out := filepath.Join(t.TempDir(), "layer.tar")
	if b, err := exec.Command("tar", "-C", dir, "--numeric-owner", "-cf", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
	l, err := tarball.LayerFromFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tarLayer makes a layer from name -> content (dirs are implied).
func tarLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, c := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, c)
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(fmt.Errorf("layer: %w", err))
	}
	return l
}
