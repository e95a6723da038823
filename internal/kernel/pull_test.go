package kernel

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"banger/internal/api"
)

func needApt(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "depmod"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

func writeCatalog(t *testing.T, dir, body string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CatalogFile), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPullDebianCloud(t *testing.T) {
	needApt(t)
	s, st, dir := newTestService(t, nil)
	ctx := context.Background()
	var mu sync.Mutex
	phases := map[string]int{}
	var lastDownload api.ProgressEvent
	e, err := s.Pull(ctx, api.KernelPullParams{Name: "debian-12-cloud"}, func(ev api.ProgressEvent) {
		mu.Lock()
		phases[ev.Phase]++
		if ev.Phase == "download" {
			lastDownload = ev
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if lastDownload.Total == 0 || lastDownload.Current != lastDownload.Total {
		t.Errorf("the download's last progress is %+v, want it complete", lastDownload)
	}
	for _, p := range []string{"resolve", "download", "unpack", "depmod", "initramfs", "done"} {
		if phases[p] == 0 {
			t.Errorf("no %q progress event (got %v)", p, phases)
		}
	}
	if !strings.HasPrefix(e.KernelVersion, "6.1.") || !strings.HasSuffix(e.KernelVersion, "-cloud-amd64") {
		t.Errorf("kernel version %q", e.KernelVersion)
	}
	if !strings.HasPrefix(e.Source, "debian:linux-image-"+e.KernelVersion+"-unsigned=") {
		t.Errorf("source %q", e.Source)
	}
	img, err := inspect(e.KernelPath)
	if err != nil || img.version != e.KernelVersion {
		t.Fatalf("stored kernel: %+v, %v", img, err)
	}
	if sum, _ := fileSHA256(e.KernelPath); sum != e.SHA256 {
		t.Errorf("sha256 %s, stored image hashes to %s", e.SHA256, sum)
	}
	for _, f := range []string{"modules.dep", "kernel/drivers/block/virtio_blk.ko"} {
		if _, err := os.Stat(filepath.Join(e.ModulesDir, f)); err != nil {
			t.Errorf("modules: %v", err)
		}
	}
	if _, cp, err := s.BootFiles(ctx, e.Name); err != nil || cp == "" {
		t.Errorf("BootFiles: cpio %q, %v", cp, err)
	}
	assertEmpty(t, dir, st, "debian-12-cloud")

	// Pulling again returns the existing kernel without work.
	again, err := s.Pull(ctx, api.KernelPullParams{Name: "debian-12-cloud"}, nil)
	if err != nil || again != e || st.inserts != 1 {
		t.Fatalf("second pull: %+v, %v (%d inserts)", again, err, st.inserts)
	}
	cat, err := s.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cat {
		if c.Pulled != (c.Name == "debian-12-cloud") {
			t.Errorf("catalog %s: pulled = %v", c.Name, c.Pulled)
		}
	}

	// --force refuses while in use, then replaces.
	st.vms["debian-12-cloud"] = []string{"devbox"}
	if _, err := s.Pull(ctx, api.KernelPullParams{Name: "debian-12-cloud", Force: true}, nil); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "devbox") {
		t.Fatalf("forced pull of a kernel in use: got %v, want ErrConflict naming devbox", err)
	}
	delete(st.vms, "debian-12-cloud")
	forced, err := s.Pull(ctx, api.KernelPullParams{Name: "debian-12-cloud", Force: true}, nil)
	if err != nil || st.inserts != 2 || forced.SHA256 != e.SHA256 {
		t.Fatalf("forced pull: %+v, %v (%d inserts)", forced, err, st.inserts)
	}
	assertEmpty(t, dir, st, "debian-12-cloud")
}

func TestPullInterrupted(t *testing.T) {
	needApt(t)
	for _, phase := range []string{"download", "unpack", "initramfs"} {
		t.Run(phase, func(t *testing.T) {
			s, st, dir := newTestService(t, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var seen atomic.Bool
			_, err := s.Pull(ctx, api.KernelPullParams{Name: "debian-12-cloud"}, func(ev api.ProgressEvent) {
				if ev.Phase == phase {
					seen.Store(true)
					cancel()
				}
			})
			if !seen.Load() {
				t.Fatalf("no %s phase before the pull ended (%v)", phase, err)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			assertEmpty(t, dir, st)
		})
	}
}

func TestPullBadInputs(t *testing.T) {
	s, st, dir := newTestService(t, nil)
	ctx := context.Background()
	_, err := s.Pull(ctx, api.KernelPullParams{Name: "debian-12-clod"}, nil)
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "debian-12-cloud") {
		t.Errorf("misspelt name: got %v, want ErrNotFound suggesting debian-12-cloud", err)
	}
	_, err = s.Pull(ctx, api.KernelPullParams{Name: "zzzz"}, nil)
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "microvm-6.1") {
		t.Errorf("unknown name: got %v, want ErrNotFound listing the catalog", err)
	}
	if _, err := s.Pull(ctx, api.KernelPullParams{Name: "../debian-12-cloud"}, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("path in name: got %v, want ErrInvalid", err)
	}
	assertEmpty(t, dir, st)
}

func TestPullSHA256Mismatch(t *testing.T) {
	needApt(t)
	s, st, dir := newTestService(t, nil)
	writeCatalog(t, dir, `{"entries":[{"name":"debian-12-cloud","kind":"debian","package":"linux-image-cloud-amd64",
		"sha256":"`+strings.Repeat("0", 64)+`"}]}`)
	_, err := s.Pull(context.Background(), api.KernelPullParams{Name: "debian-12-cloud"}, nil)
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("got %v, want ErrInvalid about sha256", err)
	}
	assertEmpty(t, dir, st)
}

func TestCatalogOverride(t *testing.T) {
	s, st, dir := newTestService(t, nil)
	ctx := context.Background()
	builtin, err := s.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range builtin {
		names[c.Name] = true
		if c.Pulled {
			t.Errorf("%s pulled in an empty store", c.Name)
		}
	}
	for _, n := range []string{"debian-12-cloud", "microvm-6.1", "ignite-5.10"} {
		if !names[n] {
			t.Errorf("built-in catalog lacks %s", n)
		}
	}
	writeCatalog(t, dir, `{"entries":[
		{"name":"debian-12-cloud","kind":"debian","package":"linux-image-cloud-amd64","description":"overridden"},
		{"name":"my-kernel","kind":"oci","ref":"registry.local/k:1","kernel_version":"6.6.1"}]}`)
	st.rows["my-kernel"] = api.KernelEntry{Name: "my-kernel"}
	got, err := s.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]api.KernelCatalogEntry{}
	for _, c := range got {
		byName[c.Name] = c
	}
	if len(got) != len(builtin)+1 || byName["debian-12-cloud"].Description != "overridden" ||
		byName["my-kernel"].KernelVersion != "6.6.1" || !byName["my-kernel"].Pulled || !names["microvm-6.1"] {
		t.Fatalf("merged catalog = %+v", got)
	}
	for _, bad := range []string{`{"entries":[{"name":"x","kind":"ftp"}]}`, `{"entries":[{"name":"Bad/Name","kind":"oci","ref":"r"}]}`, `not json`,
		`{"entries":[{"name":"x","kind":"debian","package":"p","sha256":"abc"}]}`} {
		writeCatalog(t, dir, bad)
		if _, err := s.Catalog(ctx); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("catalog %s: got %v, want ErrInvalid", bad, err)
		}
	}
}

func TestDelete(t *testing.T) {
	s, st, dir := newTestService(t, nil)
	ctx := context.Background()
	// Delete looks only at the row and the folder: lay them out by hand.
	if err := os.MkdirAll(filepath.Join(dir, "k1"), 0o755); err != nil {
		t.Fatal(err)
	}
	kp := filepath.Join(dir, "k1", "vmlinuz")
	if err := os.WriteFile(kp, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	st.rows["k1"] = api.KernelEntry{Name: "k1", KernelPath: kp}
	st.images["k1"] = []string{"debian-bookworm"}
	st.vms["k1"] = []string{"vm-a", "vm-b"}
	err := s.Delete(ctx, "k1")
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("delete in use: got %v, want ErrConflict", err)
	}
	for _, n := range []string{"debian-bookworm", "vm-a", "vm-b"} {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not name %s", err, n)
		}
	}
	assertEmpty(t, dir, st, "k1")
	delete(st.images, "k1")
	delete(st.vms, "k1")
	if err := s.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, dir, st)
	if err := s.Delete(ctx, "k1"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("delete twice: got %v, want ErrNotFound", err)
	}
	if _, _, err := s.BootFiles(ctx, "k1"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("BootFiles of deleted kernel: got %v", err)
	}
}
