package initramfs

import (
	"bytes"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"banger/internal/kernel/kerneltest"
)

// writeTree creates files (path -> contents) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClosureOrdersDependenciesFirst(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"modules.dep": strings.Join([]string{
			"kernel/drivers/virtio/virtio_mmio.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz",
			"kernel/drivers/virtio/virtio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz",
			"kernel/drivers/virtio/virtio_ring.ko.xz:",
			"kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz",
			"kernel/fs/overlayfs/overlay.ko.zst:",
			"kernel/fs/unrelated.ko:",
		}, "\n") + "\n",
		"modules.builtin": "kernel/fs/ext4/ext4.ko\n",
	})
	got, err := Closure(dir, Roots())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/drivers/virtio/virtio_ring.ko.xz",
		"kernel/drivers/virtio/virtio.ko.xz",
		"kernel/drivers/virtio/virtio_mmio.ko.xz",
		"kernel/drivers/block/virtio_blk.ko.xz",
		"kernel/fs/overlayfs/overlay.ko.zst",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("closure:\n got %q\nwant %q", got, want)
	}
}

func TestClosureErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Closure(dir, Roots()); !errors.Is(err, ErrNoModulesDep) {
		t.Fatalf("no modules.dep: got %v, want ErrNoModulesDep", err)
	}
	// overlay is required and neither built in nor a module.
	writeTree(t, dir, map[string]string{
		"modules.dep":     "kernel/drivers/virtio/virtio_blk.ko:\n",
		"modules.builtin": "kernel/drivers/virtio/virtio_mmio.ko\nkernel/fs/ext4/ext4.ko\n",
	})
	_, err := Closure(dir, Roots())
	if err == nil || !strings.Contains(err.Error(), "overlay") {
		t.Fatalf("missing required root: got %v, want an error naming overlay", err)
	}
	// A dependency modules.dep does not list is an error, not a silent skip.
	writeTree(t, dir, map[string]string{"modules.dep": "kernel/fs/overlayfs/overlay.ko: kernel/lib/gone.ko\n"})
	if _, err := Closure(dir, []Root{{Name: "overlay", Required: true}}); err == nil || !strings.Contains(err.Error(), "gone.ko") {
		t.Fatalf("unlisted dependency: got %v", err)
	}
}

func TestClosureAllBuiltIn(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"modules.dep":     "",
		"modules.builtin": "kernel/drivers/virtio/virtio_mmio.ko\nkernel/drivers/block/virtio_blk.ko\nkernel/fs/ext4/ext4.ko\nkernel/fs/overlayfs/overlay.ko\n",
	})
	var buf bytes.Buffer
	paths, err := ModulesArchive(&buf, dir, "6.1.0-test")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 0 || buf.Len() != 0 {
		t.Fatalf("all built in: got %d modules and %d archive bytes, want none", len(paths), buf.Len())
	}
}

// depsFromFile parses modules.dep independently of the code under test.
func depsFromFile(t *testing.T, file string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if mod, rest, ok := strings.Cut(line, ":"); ok {
			out[mod] = strings.Fields(rest)
		}
	}
	return out
}

func TestModulesArchiveDebian(t *testing.T) {
	root, version := kerneltest.DebianKernel(t)
	modDir := filepath.Join(root, "lib/modules", version)
	var buf bytes.Buffer
	paths, err := ModulesArchive(&buf, modDir, version)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := List(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if !e.IsDir() {
			files[e.Name] = e.Data
		}
	}

	// Expected closure straight from modules.dep: each non-built-in root and
	// every module its line lists.
	deps := depsFromFile(t, filepath.Join(modDir, "modules.dep"))
	builtin, _ := os.ReadFile(filepath.Join(modDir, "modules.builtin"))
	want := map[string]bool{}
	for _, r := range Roots() {
		if strings.Contains(string(builtin), "/"+r.Name+".ko") {
			continue
		}
		for mod, ds := range deps {
			if path.Base(mod) == r.Name+".ko" {
				want[mod] = true
				for _, d := range ds {
					want[d] = true
				}
			}
		}
	}
	if len(want) == 0 {
		t.Fatal("expected the Debian cloud kernel to need modules")
	}
	order := strings.Fields(string(files[OrderFile]))
	if !slices.Equal(order, paths) {
		t.Fatalf("%s = %q, ModulesArchive returned %q", OrderFile, order, paths)
	}
	if len(order) != len(want) {
		t.Fatalf("archive holds %d modules %q, modules.dep closure has %d", len(order), order, len(want))
	}
	pos := map[string]int{}
	prefix := path.Join("lib/modules", version) + "/"
	for i, p := range order {
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok || !want[rel] {
			t.Fatalf("unexpected module %s in archive", p)
		}
		pos[rel] = i
		host, err := os.ReadFile(filepath.Join(modDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(files[p], host) {
			t.Fatalf("%s: archive contents differ from %s", p, rel)
		}
	}
	for mod := range want {
		for _, d := range deps[mod] {
			if pos[d] >= pos[mod] {
				t.Fatalf("%s loads before its dependency %s", mod, d)
			}
		}
	}
	if len(files) != len(order)+1 {
		t.Fatalf("archive has %d files, want %d modules + %s", len(files), len(order), OrderFile)
	}
}
