package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/store"
)

// fakeProber counts probes; its probe succeeds unless probeErr is set.
type fakeProber struct {
	kvmErr   error
	kernel   string
	probeErr error
	key      string
	probes   int
	nested   bool
}

func (f *fakeProber) prober(cache string) accelProber {
	return accelProber{
		checkKVM: func() error { return f.kvmErr },
		kernel:   func(context.Context) (string, error) { return f.kernel, nil },
		nested:   func() bool { return f.nested },
		probe:    func(context.Context, string) error { f.probes++; return f.probeErr },
		key:      func(string) string { return f.key },
		cache:    cache,
	}
}

func TestDecideAccel(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, accel string
		f           fakeProber
		kvm         bool
		why         string
		probes      int
	}{
		{"explicit tcg skips the probe", AccelTCG, fakeProber{kernel: "k", key: "a"}, false, "--accel tcg", 0},
		{"explicit kvm skips the probe", AccelKVM, fakeProber{kernel: "k", key: "a", probeErr: errors.New("hangs")}, true, "--accel kvm", 0},
		{"no /dev/kvm", AccelAuto, fakeProber{kvmErr: errors.New("open /dev/kvm: no such file"), kernel: "k", key: "a"}, false, "kvm not usable: open /dev/kvm", 0},
		{"no kernel yet, nested host", AccelAuto, fakeProber{key: "a", nested: true}, false, "no kernel to probe kvm with yet and this host is a virtual machine", 0},
		{"no kernel yet, bare metal", AccelAuto, fakeProber{key: "a"}, true, "no kernel to probe kvm with yet; this host is not a virtual machine", 0},
		{"guest booted", AccelAuto, fakeProber{kernel: "k", key: "a"}, true, "a test guest booted under kvm", 1},
		{"guest hung", "", fakeProber{kernel: "k", key: "a", probeErr: errors.New("did not boot within 15s")}, false, "kvm probe failed: did not boot within 15s", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := c.f
			got, err := decideAccel(ctx, c.accel, f.prober(filepath.Join(t.TempDir(), accelCacheFile)))
			if err != nil || got.KVM != c.kvm || !strings.Contains(got.Reason, c.why) || f.probes != c.probes {
				t.Fatalf("got %+v, %v, %d probes; want kvm %v reason ~%q, %d probes", got, err, f.probes, c.kvm, c.why, c.probes)
			}
		})
	}
	if _, err := decideAccel(ctx, "hvf", (&fakeProber{}).prober("")); err == nil || !strings.Contains(err.Error(), `--accel "hvf"`) {
		t.Fatalf("bad --accel: %v", err)
	}
}

// A probe's answer is reused while its key holds, and probed again when the
// key changes (host reboot, new QEMU, kernel or agent) or is unknown.
func TestAccelProbeCached(t *testing.T) {
	ctx := context.Background()
	cache := filepath.Join(t.TempDir(), accelCacheFile)
	f := &fakeProber{kernel: "k", key: "boot1", probeErr: errors.New("did not boot")}
	for i := 0; i < 3; i++ {
		got, err := decideAccel(ctx, AccelAuto, f.prober(cache))
		if err != nil || got.KVM || !strings.Contains(got.Reason, "did not boot") {
			t.Fatalf("run %d: %+v, %v", i, got, err)
		}
	}
	if f.probes != 1 {
		t.Fatalf("%d probes for one key, want 1", f.probes)
	}
	f.key, f.probeErr = "boot2", nil
	if got, _ := decideAccel(ctx, AccelAuto, f.prober(cache)); !got.KVM || f.probes != 2 {
		t.Fatalf("new key: %+v after %d probes", got, f.probes)
	}
	if got, _ := decideAccel(ctx, AccelAuto, f.prober(cache)); !got.KVM || !strings.Contains(got.Reason, "cached") || f.probes != 2 {
		t.Fatalf("cached kvm: %+v after %d probes", got, f.probes)
	}
	f.key = ""
	decideAccel(ctx, AccelAuto, f.prober(cache))
	decideAccel(ctx, AccelAuto, f.prober(cache))
	if f.probes != 4 {
		t.Fatalf("unknown key: %d probes, want a probe each time", f.probes)
	}
	os.WriteFile(cache, []byte("not json"), 0o600)
	f.key = "boot2"
	if got, _ := decideAccel(ctx, AccelAuto, f.prober(cache)); !got.KVM || f.probes != 5 {
		t.Fatalf("corrupt cache: %+v after %d probes", got, f.probes)
	}
}

// The key changes with the boot id and with any file's size or mtime, and is
// unknown when one is missing.
func TestProbeKey(t *testing.T) {
	dir := t.TempDir()
	boot, bin := filepath.Join(dir, "boot_id"), filepath.Join(dir, "qemu")
	os.WriteFile(boot, []byte("id-1\n"), 0o600)
	os.WriteFile(bin, []byte("v1"), 0o600)
	k1 := probeKey(boot, bin)
	if k1 == "" || probeKey(boot, bin) != k1 {
		t.Fatal("key not stable")
	}
	os.WriteFile(bin, []byte("v22"), 0o600)
	k2 := probeKey(boot, bin)
	if k2 == k1 {
		t.Fatal("key ignores the binary changing")
	}
	os.WriteFile(boot, []byte("id-2\n"), 0o600)
	if probeKey(boot, bin) == k2 {
		t.Fatal("key ignores the host rebooting")
	}
	if probeKey(boot, filepath.Join(dir, "missing")) != "" || probeKey(filepath.Join(dir, "nope"), bin) != "" {
		t.Fatal("key known with a missing input")
	}
}

// The probe uses the most recently imported stored kernel whose file exists.
func TestNewestKernel(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := &Daemon{store: st}
	if k, err := d.newestKernel(ctx); err != nil || k != "" {
		t.Fatalf("no kernels: %q, %v", k, err)
	}
	old, newer := filepath.Join(dir, "vmlinuz-old"), filepath.Join(dir, "vmlinuz-new")
	os.WriteFile(old, []byte("k"), 0o600)
	os.WriteFile(newer, []byte("k"), 0o600)
	st.InsertKernel(ctx, api.KernelEntry{Name: "a", KernelPath: newer, ImportedAt: "2026-11-30T10:00:00Z"})
	st.InsertKernel(ctx, api.KernelEntry{Name: "b", KernelPath: old, ImportedAt: "2026-11-01T10:00:00Z"})
	st.InsertKernel(ctx, api.KernelEntry{Name: "c", KernelPath: filepath.Join(dir, "gone"), ImportedAt: "2026-12-01T10:00:00Z"})
	if k, err := d.newestKernel(ctx); err != nil || k != newer {
		t.Fatalf("newest kernel: %q, %v; want %q", k, err, newer)
	}
}

func TestNestedHost(t *testing.T) {
	dir := t.TempDir()
	vm := filepath.Join(dir, "vm")
	metal := filepath.Join(dir, "metal")
	os.WriteFile(vm, []byte("processor\t: 0\nflags\t\t: fpu vme hypervisor lahf_lm\n"), 0o644)
	os.WriteFile(metal, []byte("processor\t: 0\nflags\t\t: fpu vme vmx lahf_lm\n"), 0o644)
	if !nestedHost(vm) || nestedHost(metal) || nestedHost(filepath.Join(dir, "missing")) {
		t.Errorf("nestedHost: vm %v, metal %v", nestedHost(vm), nestedHost(metal))
	}
}
