package kernel

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/initramfs"
	"banger/internal/kernel/kerneltest"
)

// copyDebianKernel copies the cached Debian kernel tree into a fresh folder
// the test may delete.
func copyDebianKernel(t *testing.T) (dir, version string) {
	t.Helper()
	root, version := kerneltest.DebianKernel(t)
	dir = filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("cp", "-a", root, dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dir, version
}

func TestInspectDebianBzImage(t *testing.T) {
	root, version := kerneltest.DebianKernel(t)
	img, err := inspect(filepath.Join(root, "boot", "vmlinuz-"+version))
	if err != nil {
		t.Fatal(err)
	}
	if img.format != "bzImage" || img.version != version || img.arch != "x86_64" {
		t.Fatalf("inspect = %+v, want bzImage %s x86_64", img, version)
	}
}

func TestInspectELF(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("needs gcc to build ELF test files")
	}
	dir := t.TempDir()
	build := func(name, src string) string {
		c := filepath.Join(dir, name+".c")
		if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, name)
		if b, err := exec.Command("gcc", "-o", out, c).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v: %s", err, b)
		}
		return out
	}
	withBanner := build("banner", `const char linux_banner[] = "Linux version 6.1.99-banger (x@y) (gcc) #1 SMP\n";
int main(void) { return linux_banner[0]; }`)
	img, err := inspect(withBanner)
	if err != nil {
		t.Fatal(err)
	}
	if img.format != "elf" || img.version != "6.1.99-banger" || img.arch != "x86_64" {
		t.Fatalf("inspect = %+v, want elf 6.1.99-banger x86_64", img)
	}
	plain := build("plain", `int main(void) { return 0; }`)
	if _, err := inspect(plain); !errors.Is(err, errNotKernel) {
		t.Fatalf("ELF without banner: got %v, want errNotKernel", err)
	}
}

func TestImportDebianKernel(t *testing.T) {
	src, version := copyDebianKernel(t)
	srcKernel := filepath.Join(src, "boot", "vmlinuz-"+version)
	wantSum, err := fileSHA256(srcKernel)
	if err != nil {
		t.Fatal(err)
	}
	s, st, dir := newTestService(t, denyUnder("/nonexistent-prefix"))
	ctx := context.Background()
	e, err := s.Import(ctx, api.KernelImportParams{Name: "deb", FromDir: src, Distro: "debian", Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if e.KernelVersion != version || e.SHA256 != wantSum || e.Arch != "x86_64" || e.Distro != "debian" {
		t.Fatalf("entry = %+v; want version %s sha256 %s arch x86_64", e, version, wantSum)
	}
	if e.KernelPath != filepath.Join(dir, "deb", "vmlinuz") || e.ModulesDir != filepath.Join(dir, "deb", "lib/modules", version) {
		t.Fatalf("paths = %s, %s", e.KernelPath, e.ModulesDir)
	}
	if got, _ := st.GetKernel(ctx, "deb"); got != e {
		t.Fatalf("row = %+v, want %+v", got, e)
	}
	a, _ := os.Stat(srcKernel)
	b, _ := os.Stat(e.KernelPath)
	if os.SameFile(a, b) {
		t.Fatal("kernel image linked, not copied")
	}
	// Deleting the source folder breaks nothing.
	if err := os.RemoveAll(src); err != nil {
		t.Fatal(err)
	}
	kp, cp, err := s.BootFiles(ctx, "deb")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fileSHA256(kp); err != nil || got != wantSum {
		t.Fatalf("stored kernel sha256 %s, %v; want %s", got, err, wantSum)
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
	if !strings.Contains(order, "/virtio_blk.ko\n") || !strings.Contains(order, "/overlay.ko\n") {
		t.Fatalf("modules cpio order file lacks virtio_blk/overlay:\n%s", order)
	}
	if _, err := os.Stat(filepath.Join(e.ModulesDir, "kernel/fs/overlayfs/overlay.ko")); err != nil {
		t.Fatalf("modules not copied: %v", err)
	}

	// The name is now taken.
	other := filepath.Join(t.TempDir(), "other")
	writeFakeDir(t, other, "vmlinuz", kp)
	if _, err := s.Import(ctx, api.KernelImportParams{Name: "deb", FromDir: other}); !errors.Is(err, api.ErrExists) {
		t.Fatalf("import onto a taken name: got %v, want ErrExists", err)
	}
	assertEmpty(t, dir, st, "deb")
	if got, _ := st.GetKernel(ctx, "deb"); got != e {
		t.Fatal("row changed by the refused import")
	}
}

// writeFakeDir makes dir holding name, a copy of src (or text when src is
// not a file).
func writeFakeDir(t *testing.T, dir, name, src string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		data = []byte(src)
	}
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportBadInputs(t *testing.T) {
	root, version := kerneltest.DebianKernel(t)
	realKernel := filepath.Join(root, "boot", "vmlinuz-"+version)
	s, st, dir := newTestService(t, denyUnder("/srv/secret"))
	ctx := context.Background()
	base := t.TempDir()

	noKernel := filepath.Join(base, "nokernel")
	writeFakeDir(t, noKernel, "README", "no kernel here")
	notKernel := filepath.Join(base, "notkernel")
	writeFakeDir(t, notKernel, "vmlinuz", strings.Repeat("this is not a kernel\n", 100))
	wrongMods := filepath.Join(base, "wrongmods")
	writeFakeDir(t, wrongMods, "vmlinuz", realKernel)
	writeFakeDir(t, wrongMods, "lib/modules/5.10.0-other/modules.dep", "")
	good := filepath.Join(base, "good")
	writeFakeDir(t, good, "bzImage", realKernel)

	cases := []struct {
		name string
		p    api.KernelImportParams
		kind error
		msg  string
	}{
		{"no kernel", api.KernelImportParams{Name: "k1", FromDir: noKernel}, api.ErrInvalid, "no kernel image"},
		{"non-kernel vmlinuz", api.KernelImportParams{Name: "k2", FromDir: notKernel}, api.ErrInvalid, "not a Linux kernel"},
		{"modules for another version", api.KernelImportParams{Name: "k3", FromDir: wrongMods}, api.ErrInvalid, "5.10.0-other"},
		{"path in name", api.KernelImportParams{Name: "../evil", FromDir: good}, api.ErrInvalid, "invalid kernel name"},
		{"slash in name", api.KernelImportParams{Name: "a/b", FromDir: good}, api.ErrInvalid, "invalid kernel name"},
		{"upper case name", api.KernelImportParams{Name: "Deb", FromDir: good}, api.ErrInvalid, "invalid kernel name"},
		{"empty name", api.KernelImportParams{Name: "", FromDir: good}, api.ErrInvalid, "invalid kernel name"},
		{"relative dir", api.KernelImportParams{Name: "k4", FromDir: "good"}, api.ErrInvalid, "absolute"},
		{"missing dir", api.KernelImportParams{Name: "k5", FromDir: filepath.Join(base, "missing")}, api.ErrNotFound, "cannot read"},
		{"wrong arch", api.KernelImportParams{Name: "k6", FromDir: good, Arch: "arm64"}, api.ErrInvalid, "aarch64"},
		{"unknown arch", api.KernelImportParams{Name: "k7", FromDir: good, Arch: "pdp11"}, api.ErrInvalid, "pdp11"},
		{"unreadable dir", api.KernelImportParams{Name: "k8", FromDir: "/srv/secret/k"}, api.ErrPermission, "cannot read"},
	}
	for _, c := range cases {
		_, err := s.Import(ctx, c.p)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v, want %v mentioning %q", c.name, err, c.kind, c.msg)
		}
	}
	assertEmpty(t, dir, st)

	// A folder the caller may list but whose kernel file it may not read.
	hidden := filepath.Join(base, "hidden")
	writeFakeDir(t, hidden, "vmlinuz", realKernel)
	s2, st2, dir2 := newTestService(t, denyUnder(filepath.Join(hidden, "vmlinuz")))
	if _, err := s2.Import(ctx, api.KernelImportParams{Name: "k9", FromDir: hidden}); !errors.Is(err, api.ErrPermission) {
		t.Errorf("unreadable kernel file: got %v, want ErrPermission", err)
	}
	assertEmpty(t, dir2, st2)

	// A module file only its owner may read, in a tree the caller may list.
	private := filepath.Join(base, "private")
	writeFakeDir(t, private, "vmlinuz", realKernel)
	writeFakeDir(t, private, "lib/modules/"+version+"/modules.dep", "")
	secret := filepath.Join(private, "lib/modules", version, "secret.ko")
	writeFakeDir(t, private, "lib/modules/"+version+"/secret.ko", "secret")
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	s3, st3, dir3 := newTestService(t, denyUnder(secret))
	if _, err := s3.Import(ctx, api.KernelImportParams{Name: "k10", FromDir: private}); !errors.Is(err, api.ErrPermission) {
		t.Errorf("unreadable module file: got %v, want ErrPermission", err)
	}
	assertEmpty(t, dir3, st3)

	// The good folder imports (a bzImage with no modules: no cpio).
	e, err := s.Import(ctx, api.KernelImportParams{Name: "good", FromDir: good})
	if err != nil {
		t.Fatal(err)
	}
	kp, cp, err := s.BootFiles(ctx, "good")
	if err != nil || kp != e.KernelPath || cp != "" || e.ModulesDir != "" {
		t.Fatalf("BootFiles = %q, %q, %v; entry %+v", kp, cp, err, e)
	}
}

// The source folder is read by a child running as the caller: a symlink in
// it to a file only root can read is refused, and that file's content never
// reaches the store; a link to a file the caller can read is copied.
func TestImportAsCallerRefusesLinksToRootOnlyFiles(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to act for another uid")
	}
	root, version := kerneltest.DebianKernel(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	secret := filepath.Join(base, "secret")
	writeFakeDir(t, base, "secret", "ROOT-ONLY-CONTENT")
	os.Chmod(secret, 0o600)
	src := filepath.Join(base, "src")
	writeFakeDir(t, src, "vmlinuz", filepath.Join(root, "boot", "vmlinuz-"+version))
	writeFakeDir(t, src, "boot/README", "boot files")
	writeFakeDir(t, base, "shared.txt", "shared")
	if err := os.Symlink(filepath.Join(base, "shared.txt"), filepath.Join(src, "config")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(src, "boot", "leak.ko")); err != nil {
		t.Fatal(err)
	}
	s, st, dir := newTestService(t, authz.Checker{})
	nobody := authz.WithCaller(context.Background(), authz.Caller{UID: 65534, GID: 65534})
	_, err := s.Import(nobody, api.KernelImportParams{Name: "leak", FromDir: src})
	if !errors.Is(err, api.ErrPermission) || !strings.Contains(err.Error(), "leak.ko") {
		t.Fatalf("import with a link to a root-only file: %v", err)
	}
	assertEmpty(t, dir, st)
	assertNoContent(t, dir, "ROOT-ONLY-CONTENT")

	os.Remove(filepath.Join(src, "boot", "leak.ko"))
	e, err := s.Import(nobody, api.KernelImportParams{Name: "ok", FromDir: src})
	if err != nil {
		t.Fatalf("import as nobody: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(filepath.Dir(e.KernelPath), "config"))
	if err != nil || string(got) != "shared" {
		t.Fatalf("linked readable file: %q, %v", got, err)
	}
}

// assertNoContent fails when any file under dir holds needle.
func assertNoContent(t *testing.T, dir, needle string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if data, _ := os.ReadFile(p); strings.Contains(string(data), needle) {
				t.Errorf("%s holds root-only content", p)
			}
		}
		return nil
	})
}
