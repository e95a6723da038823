package firecracker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/bootcfg"
	"banger/internal/kernel/kerneltest"
	"banger/internal/vmm"
)

// writeELF writes a minimal ELF64 little-endian header of the given type and machine.
func writeELF(t *testing.T, path string, typ, machine uint16) {
	t.Helper()
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1 // ELFCLASS64, little endian, EV_CURRENT
	binary.LittleEndian.PutUint16(h[16:], typ)
	binary.LittleEndian.PutUint16(h[18:], machine)
	binary.LittleEndian.PutUint32(h[20:], 1)
	binary.LittleEndian.PutUint16(h[52:], 64) // e_ehsize
	if err := os.WriteFile(path, h, 0o644); err != nil {
		t.Fatal(err)
	}
}

// testSpec is a full banger-like spec in a temp dir: an ELF "vmlinux", an
// initrd, the four banger disks and a tap.
func testSpec(t *testing.T) vmm.Spec {
	t.Helper()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinux")
	writeELF(t, kernel, 2, 62) // ET_EXEC, EM_X86_64
	return vmm.Spec{
		RunDir: filepath.Join(dir, "run"),
		Kernel: kernel, Initrd: filepath.Join(dir, "initrd.cpio"),
		Cmdline: "console=ttyS0 reboot=t panic=-1 quiet",
		VCPUs:   2, MemoryMiB: 512, SerialLog: filepath.Join(dir, "serial.log"),
		Disks: []vmm.Disk{
			{Path: filepath.Join(dir, "rootfs.ext4"), Serial: bootcfg.SerialRootfs, ReadOnly: true},
			{Path: filepath.Join(dir, "overlay.ext4"), Serial: bootcfg.SerialOverlay},
			{Path: filepath.Join(dir, "work.ext4"), Serial: bootcfg.SerialWork},
			{Path: filepath.Join(dir, "config.img"), Serial: bootcfg.SerialConfig, ReadOnly: true},
		},
		Net: &vmm.Net{Tap: "bgtap7", MAC: "02:00:0a:00:00:07"},
	}
}

// TestConfigureRequestsMatchSwagger records what configure sends to an
// httptest Firecracker on a unix socket and validates every request against
// the swagger spec.
func TestConfigureRequestsMatchSwagger(t *testing.T) {
	doc := loadSwagger(t)
	spec := testSpec(t)
	var mu sync.Mutex
	var reqs []recorded
	sock := filepath.Join(t.TempDir(), "fc.sock")
	srv, err := serveUnix(sock, &fakeAPI{record: func(r recorded) {
		mu.Lock()
		reqs = append(reqs, r)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := configure(ctx, NewClient(sock), spec); err != nil {
		t.Fatalf("configure: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	var paths []string
	for _, r := range reqs {
		paths = append(paths, r.Method+" "+r.Path)
		if err := doc.checkRequest(r.Method, r.Path, r.Body); err != nil {
			t.Errorf("request does not match the spec: %v", err)
		}
	}
	want := []string{"PUT /machine-config", "PUT /boot-source", "PUT /drives/d0", "PUT /drives/d1",
		"PUT /drives/d2", "PUT /drives/d3", "PUT /network-interfaces/eth0", "PUT /actions"}
	if !slices.Equal(paths, want) {
		t.Errorf("requests:\n got %q\nwant %q", paths, want)
	}
}

func TestConfigRequestsContent(t *testing.T) {
	spec := testSpec(t)
	reqs := configRequests(spec)
	body := func(i int) map[string]any {
		data, err := json.Marshal(reqs[i].Body)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(data, &m)
		return m
	}
	if m := body(0); m["vcpu_count"] != 2.0 || m["mem_size_mib"] != 512.0 {
		t.Errorf("machine-config = %v", m)
	}
	boot := body(1)
	if boot["kernel_image_path"] != spec.Kernel || boot["initrd_path"] != spec.Initrd {
		t.Errorf("boot-source = %v", boot)
	}
	args, _ := boot["boot_args"].(string)
	if !strings.HasPrefix(args, spec.Cmdline+" ") ||
		!strings.Contains(args, " banger.disks=banger-rootfs:vda,banger-overlay:vdb,banger-work:vdc,banger-config:vdd") {
		t.Errorf("boot_args = %q", args)
	}
	for i, d := range spec.Disks {
		m := body(2 + i)
		if m["path_on_host"] != d.Path || m["is_read_only"] != d.ReadOnly || m["is_root_device"] != false ||
			m["drive_id"] != strings.TrimPrefix(reqs[2+i].Path, "/drives/") {
			t.Errorf("drive %d = %v at %s", i, m, reqs[2+i].Path)
		}
	}
	if m := body(6); m["host_dev_name"] != "bgtap7" || m["guest_mac"] != "02:00:0a:00:00:07" {
		t.Errorf("network interface = %v", m)
	}
	if m := body(7); m["action_type"] != "InstanceStart" {
		t.Errorf("last request = %v, want InstanceStart", m)
	}

	// No initrd, no net: neither is sent.
	spec.Initrd, spec.Net = "", nil
	reqs = configRequests(spec)
	if _, ok := body(1)["initrd_path"]; ok {
		t.Error("empty initrd sent")
	}
	for _, r := range reqs {
		if strings.HasPrefix(r.Path, "/network-interfaces/") {
			t.Error("network interface sent without Spec.Net")
		}
	}
}

func TestBootArgs(t *testing.T) {
	disks := []vmm.Disk{{Serial: "banger-rootfs"}, {}, {Serial: "banger-work"}}
	tests := []struct{ cmdline, want string }{
		{"console=ttyS0  quiet", "console=ttyS0 quiet banger.disks=banger-rootfs:vda,banger-work:vdc pci=off"},
		{"pci=on", "pci=on banger.disks=banger-rootfs:vda,banger-work:vdc"},
		{"", "banger.disks=banger-rootfs:vda,banger-work:vdc pci=off"},
	}
	for _, tt := range tests {
		if got := bootArgs(tt.cmdline, disks); got != tt.want {
			t.Errorf("bootArgs(%q) = %q, want %q", tt.cmdline, got, tt.want)
		}
	}
	if got := bootArgs("quiet", []vmm.Disk{{}}); got != "quiet pci=off" {
		t.Errorf("no serials: %q", got)
	}
	if diskName(0) != "vda" || diskName(25) != "vdz" {
		t.Errorf("disk names: %s %s", diskName(0), diskName(25))
	}
}

func TestCheckSpec(t *testing.T) {
	if err := checkSpec(testSpec(t)); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	tests := []struct {
		name   string
		change func(*vmm.Spec)
		want   string
	}{
		{"user net", func(s *vmm.Spec) { s.Net = &vmm.Net{MAC: "02:00:00:00:00:01", SSHHostPort: 2222} },
			"no user-mode networking"},
		{"relative run dir", func(s *vmm.Spec) { s.RunDir = "run" }, `run dir path "run" is not absolute`},
		{"long run dir", func(s *vmm.Spec) { s.RunDir = "/" + strings.Repeat("x", 120) }, "too long for a unix socket"},
		{"no kernel", func(s *vmm.Spec) { s.Kernel = "" }, "kernel path is empty"},
		{"vcpus", func(s *vmm.Spec) { s.VCPUs = 33 }, "1 to 32 vcpus, got 33"},
		{"memory", func(s *vmm.Spec) { s.MemoryMiB = 0 }, "memory must be at least"},
		{"disk path", func(s *vmm.Spec) { s.Disks[1].Path = "x.img" }, `disk 1 path "x.img"`},
		{"serial", func(s *vmm.Spec) { s.Disks[0].Serial = "a:b" }, `serial "a:b"`},
		{"too many disks", func(s *vmm.Spec) { s.Disks = make([]vmm.Disk, 27) }, "at most 26 disks"},
		{"mac", func(s *vmm.Spec) { s.Net.MAC = "zz" }, `bad mac address "zz"`},
		{"tap", func(s *vmm.Spec) { s.Net.Tap = "a/b" }, `bad tap device name "a/b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSpec(t)
			tt.change(&s)
			err := checkSpec(s)
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("checkSpec = %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestCheckKernel(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "vmlinux")
	writeELF(t, good, 2, 62)
	if err := checkKernel(good); err != nil {
		t.Errorf("x86-64 vmlinux rejected: %v", err)
	}
	bz := make([]byte, 4096)
	copy(bz[0x202:], "HdrS")
	bzPath := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(bzPath, bz, 0o644); err != nil {
		t.Fatal(err)
	}
	arm := filepath.Join(dir, "arm")
	writeELF(t, arm, 2, 183) // EM_AARCH64
	rel := filepath.Join(dir, "module.o")
	writeELF(t, rel, 1, 62) // ET_REL
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("hello"), 0o644)
	for path, want := range map[string]string{bzPath: "is a bzImage", arm: "AARCH64", rel: "ET_REL", junk: "not an ELF file"} {
		err := checkKernel(path)
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "microvm-6.1") {
			t.Errorf("checkKernel(%s) = %v, want ErrInvalid with %q naming microvm-6.1", filepath.Base(path), err, want)
		}
	}
	if err := checkKernel(filepath.Join(dir, "missing")); err == nil || errors.Is(err, api.ErrInvalid) {
		t.Errorf("missing kernel: %v, want a plain not-found error", err)
	}
	// A real distribution kernel, when the host has one, is a bzImage.
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	if k := kerneltest.CachedVmlinuz(); k != "" {
		ks = append(ks, k)
	}
	if len(ks) > 0 {
		t.Logf("real kernel: %s", ks[0])
		if err := checkKernel(ks[0]); err == nil || !strings.Contains(err.Error(), "bzImage") &&
			!errors.Is(err, os.ErrPermission) {
			t.Errorf("checkKernel(%s) = %v, want a bzImage error", ks[0], err)
		}
	}
}
