package vm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/paths"
)

// createStopped creates a VM without booting it and returns its work disk.
func createStopped(t *testing.T, m *Manager, p api.VMCreateParams) string {
	t.Helper()
	p.NoStart = true
	op, err := m.Create(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if done := waitOp(t, m, op.ID); !done.Success {
		t.Fatalf("create: %+v", done)
	}
	vm, err := m.Show(context.Background(), p.Name)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(vm.Dir, paths.VMWorkDisk)
}

func TestDiskSizeLimits(t *testing.T) {
	m, _, _ := newTestManager(t, &fakeBackend{})
	ctx := context.Background()
	m.cfg.MaxDiskBytes = 4 << 30
	free := int64(5 << 30)
	m.freeSpace = func(string) (int64, error) { return free, nil }

	for _, c := range []struct {
		p    api.VMCreateParams
		want string
	}{
		{api.VMCreateParams{Name: "big", ImageName: "img", WorkDiskSize: "15T", SystemOverlaySize: "1G"}, "work disk size 15T is over the 4 GiB limit"},
		{api.VMCreateParams{Name: "big", ImageName: "img", WorkDiskSize: "1G", SystemOverlaySize: "5G"}, "system overlay size 5G is over the 4 GiB limit"},
		{api.VMCreateParams{Name: "big", ImageName: "img", WorkDiskSize: "3G", SystemOverlaySize: "3G"}, "needs up to 6 GiB but only 5 GiB is free on"},
		// The defaults (8 GiB each) are checked too.
		{api.VMCreateParams{Name: "big", ImageName: "img"}, "over the 4 GiB limit"},
	} {
		_, err := m.Create(ctx, c.p)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("create %+v: error %v, want one line with %q", c.p, err, c.want)
		}
	}
	if vms, _ := m.List(ctx); len(vms) != 0 {
		t.Fatalf("refused creates left rows: %v", vms)
	}

	work := createStopped(t, m, api.VMCreateParams{Name: "ok", ImageName: "img", WorkDiskSize: "2G", SystemOverlaySize: "2G"})
	if _, err := m.Set(ctx, api.VMSetParams{IDOrName: "ok", WorkDiskSize: "5G"}); err == nil || !strings.Contains(err.Error(), "over the 4 GiB limit") {
		t.Fatalf("set over the cap: %v", err)
	}
	free = 1 << 30
	if _, err := m.Set(ctx, api.VMSetParams{IDOrName: "ok", WorkDiskSize: "4G"}); err == nil || !strings.Contains(err.Error(), "only 1 GiB is free") {
		t.Fatalf("set over the free space: %v", err)
	}
	if fileSize(work) != 2<<30 {
		t.Fatalf("refused set changed the work disk to %d bytes", fileSize(work))
	}
	free = 4 << 30
	vm, err := m.Set(ctx, api.VMSetParams{IDOrName: "ok", WorkDiskSize: "4G"})
	if err != nil {
		t.Fatal(err)
	}
	if vm.WorkDiskBytes != 4<<30 || fileSize(work) != 4<<30 {
		t.Fatalf("after set: record %d, file %d bytes", vm.WorkDiskBytes, fileSize(work))
	}
}

// TestFreeBytesOfMissingDir reads the free space of the nearest existing parent.
func TestFreeBytesOfMissingDir(t *testing.T) {
	n, err := freeBytes(filepath.Join(t.TempDir(), "not", "yet"))
	if err != nil || n <= 0 {
		t.Fatalf("free bytes %d, %v", n, err)
	}
}

// TestSetWorkDiskOnlyExtendsFile: growing a stopped VM's work disk only
// extends the file. The host runs no tool on the guest-written filesystem
// (fake e2fsck, resize2fs, debugfs and mount on PATH record any call) and
// leaves its bytes alone: a disk the guest filled with garbage grows too.
func TestSetWorkDiskOnlyExtendsFile(t *testing.T) {
	m, _, _ := newTestManager(t, &fakeBackend{})
	m.freeSpace = func(string) (int64, error) { return 1 << 40, nil }
	ctx := context.Background()
	work := createStopped(t, m, api.VMCreateParams{Name: "g", ImageName: "img", WorkDiskSize: "256M", SystemOverlaySize: "256M"})

	garbage := bytes.Repeat([]byte{0xAA}, 1<<20)
	f, err := os.OpenFile(work, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(garbage, 0)
	f.Close()

	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	for _, tool := range []string{"e2fsck", "fsck", "fsck.ext4", "resize2fs", "debugfs", "tune2fs", "dumpe2fs", "mount", "losetup"} {
		script := "#!/bin/sh\necho " + tool + " \"$@\" >> " + calls + "\nexit 1\n"
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	vm, err := m.Set(ctx, api.VMSetParams{IDOrName: "g", WorkDiskSize: "1G"})
	if err != nil {
		t.Fatalf("set on a disk the host cannot parse: %v", err)
	}
	if vm.WorkDiskBytes != 1<<30 || fileSize(work) != 1<<30 {
		t.Fatalf("after set: record %d, file %d bytes", vm.WorkDiskBytes, fileSize(work))
	}
	if data, _ := os.ReadFile(calls); len(data) > 0 {
		t.Fatalf("host tools ran on the guest's disk:\n%s", data)
	}
	head := make([]byte, len(garbage))
	f, _ = os.Open(work)
	f.ReadAt(head, 0)
	f.Close()
	if !bytes.Equal(head, garbage) {
		t.Fatal("the host rewrote the guest's disk")
	}
	if allocated(work) > 64<<20 {
		t.Fatalf("extending wrote %d bytes; it must stay sparse", allocated(work))
	}
}

// TestNoHostToolsOnGuestDisks guards the VM manager's source: no fsck,
// resize or debugfs tool and no mount, ever, on a VM's disks.
func TestNoHostToolsOnGuestDisks(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{`"e2fsck"`, `"fsck`, `"resize2fs"`, `"debugfs"`, `"tune2fs"`, `"mount"`, `"losetup"`, "unix.Mount(", "syscall.Mount("} {
			if bytes.Contains(src, []byte(bad)) {
				t.Errorf("%s uses %s", f, bad)
			}
		}
	}
}
