package initsys

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"banger/internal/bootcfg"
)

func TestParseDiskMap(t *testing.T) {
	got, err := ParseDiskMap("console=ttyS0 banger.disks=rootfs:vda,banger-overlay:/dev/vdb,work:vdc,config:vdd quiet")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		bootcfg.SerialRootfs: "vda", bootcfg.SerialOverlay: "vdb",
		bootcfg.SerialWork: "vdc", bootcfg.SerialConfig: "vdd",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if m, err := ParseDiskMap("console=ttyS0 root=/dev/vda"); err != nil || len(m) != 0 {
		t.Fatalf("no banger.disks: got %v, %v", m, err)
	}
	for _, bad := range []string{"banger.disks=rootfs", "banger.disks=swap:vda", "banger.disks=rootfs:../sda", "banger.disks=rootfs:"} {
		if _, err := ParseDiskMap(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// fakeSys makes sysBlock/NAME/serial files and dev/NAME nodes (plain files).
func fakeSys(t *testing.T, serials map[string]string) (sysBlock, dev string) {
	t.Helper()
	dir := t.TempDir()
	sysBlock, dev = filepath.Join(dir, "sys/block"), filepath.Join(dir, "dev")
	for _, d := range []string{sysBlock, dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, serial := range serials {
		addDisk(t, sysBlock, dev, name, serial)
	}
	return sysBlock, dev
}

func addDisk(t *testing.T, sysBlock, dev, name, serial string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(sysBlock, name), 0o755); err != nil {
		t.Fatal(err)
	}
	if serial != "" {
		if err := os.WriteFile(filepath.Join(sysBlock, name, "serial"), []byte(serial+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dev, name), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestScanDisks(t *testing.T) {
	sys, dev := fakeSys(t, map[string]string{
		"vda": bootcfg.SerialRootfs, "vdb": bootcfg.SerialOverlay, "vdc": "someone-else", "vdd": bootcfg.SerialConfig,
	})
	addDisk(t, sys, dev, "vde", "")
	got, err := ScanDisks(sys, dev, map[string]string{bootcfg.SerialWork: "vde"})
	if err != nil {
		t.Fatal(err)
	}
	want := Disks{
		bootcfg.SerialRootfs: dev + "/vda", bootcfg.SerialOverlay: dev + "/vdb",
		bootcfg.SerialConfig: dev + "/vdd", bootcfg.SerialWork: dev + "/vde",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestFindDisksWaitsForLateDisk(t *testing.T) {
	sys, dev := fakeSys(t, map[string]string{"vda": bootcfg.SerialRootfs, "vdb": bootcfg.SerialConfig, "vdc": bootcfg.SerialOverlay})
	go func() {
		time.Sleep(300 * time.Millisecond)
		addDisk(t, sys, dev, "vdd", bootcfg.SerialWork)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := FindDisks(ctx, sys, dev, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[bootcfg.SerialWork] != dev+"/vdd" {
		t.Fatalf("late work disk not found: %v", got)
	}
}

func TestFindDisksOptionalAndRequired(t *testing.T) {
	sys, dev := fakeSys(t, map[string]string{"vda": bootcfg.SerialRootfs, "vdb": bootcfg.SerialConfig})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	got, err := FindDisks(ctx, sys, dev, nil, nil)
	if err != nil {
		t.Fatalf("optional disks missing should not fail: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %v, want rootfs and config only", got)
	}

	sys, dev = fakeSys(t, map[string]string{"vda": bootcfg.SerialRootfs, "vdb": "other"})
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = FindDisks(ctx, sys, dev, nil, nil)
	if err == nil || !strings.Contains(err.Error(), bootcfg.SerialConfig) || !strings.Contains(err.Error(), "vdb(serial=other)") {
		t.Fatalf("missing config disk: got %v", err)
	}
}

func TestParseModulesOrder(t *testing.T) {
	in := "# deps first\nlib/modules/6.1/kernel/virtio.ko\n\n/lib/modules/6.1/kernel/virtio_blk.ko.xz\n"
	got, err := ParseModulesOrder(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"lib/modules/6.1/kernel/virtio.ko", "lib/modules/6.1/kernel/virtio_blk.ko.xz"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := ParseModulesOrder(strings.NewReader("../../etc/x.ko\n")); err == nil {
		t.Fatal("escaping path accepted")
	}
}

func TestLoadModulesMissingListAndFile(t *testing.T) {
	root := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	if err := LoadModules(root, log); err != nil {
		t.Fatalf("no modules.order: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "banger"), 0o755); err != nil {
		t.Fatal(err)
	}
	order := "lib/modules/x/missing_one.ko\nlib/modules/x/missing_two.ko\n"
	if err := os.WriteFile(filepath.Join(root, ModulesOrder), []byte(order), 0o644); err != nil {
		t.Fatal(err)
	}
	err := LoadModules(root, log)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing_two.ko") {
		t.Fatalf("got %v, want both missing modules reported", err)
	}
}

func TestConfigDiskAndFile(t *testing.T) {
	cfg := &bootcfg.Config{
		VMID: "vm1", Hostname: "dev-box", SSHHostKey: "KEY", AuthorizedKeys: []string{"ssh-ed25519 AAAA"},
		Network: &bootcfg.Network{MAC: "02:00:00:00:00:01", Address: "172.30.0.2/24", Gateway: "172.30.0.1", DNS: []string{"1.1.1.1"}},
	}
	disk, err := bootcfg.Encode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dev := filepath.Join(dir, "vdd")
	if err := os.WriteFile(dev, disk, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadConfigDisk(dev)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cfg) {
		t.Fatalf("disk round trip: got %+v", got)
	}
	path := filepath.Join(dir, "config.json")
	if err := WriteConfigFile(path, got); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file mode: %v %v", fi, err)
	}
	again, err := ReadConfigFile(path)
	if err != nil || !reflect.DeepEqual(again, cfg) {
		t.Fatalf("file round trip: %+v %v", again, err)
	}

	if err := os.WriteFile(dev, []byte("not a config"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadConfigDisk(dev); err == nil || !strings.Contains(err.Error(), "bad magic") {
		t.Fatalf("bad disk: got %v", err)
	}
}

func TestCheckConfigRejects(t *testing.T) {
	good := func() *bootcfg.Config {
		return &bootcfg.Config{Hostname: "a", SSHHostKey: "k", Network: &bootcfg.Network{MAC: "02:00:00:00:00:01", Address: "10.0.0.2/24"}}
	}
	if err := CheckConfig(good()); err != nil {
		t.Fatalf("good config: %v", err)
	}
	cases := map[string]func(*bootcfg.Config){
		"hostname":  func(c *bootcfg.Config) { c.Hostname = "bad_host name" },
		"no key":    func(c *bootcfg.Config) { c.SSHHostKey = "" },
		"init mode": func(c *bootcfg.Config) { c.InitMode = "systemd" },
		"mac":       func(c *bootcfg.Config) { c.Network.MAC = "zz" },
		"address":   func(c *bootcfg.Config) { c.Network.Address = "10.0.0.2" },
		"gateway":   func(c *bootcfg.Config) { c.Network.Gateway = "gw" },
		"dns":       func(c *bootcfg.Config) { c.Network.DNS = []string{"dns.example"} },
	}
	for name, mutate := range cases {
		c := good()
		mutate(c)
		if err := CheckConfig(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriteEtc(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(outside, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	// systemd images: resolv.conf points into /run, dangling here.
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(etc, "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	// A symlink whose target exists outside the root must not be written through.
	if err := os.Symlink(outside, filepath.Join(etc, "hosts")); err != nil {
		t.Fatal(err)
	}
	cfg := &bootcfg.Config{Hostname: "box.example", Network: &bootcfg.Network{DNS: []string{"10.0.0.1", "1.1.1.1"}, DNSSearch: []string{"lan"}}}
	if err := WriteEtc(root, cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"hostname":    "box.example\n",
		"hosts":       "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n127.0.1.1 box.example box\n",
		"resolv.conf": "# written by banger at boot\nsearch lan\nnameserver 10.0.0.1\nnameserver 1.1.1.1\n",
	}
	for name, content := range want {
		p := filepath.Join(etc, name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s: not a regular file: %v %v", name, fi, err)
		}
		data, _ := os.ReadFile(p)
		if string(data) != content {
			t.Errorf("%s = %q, want %q", name, data, content)
		}
	}
	if data, _ := os.ReadFile(outside); string(data) != "keep me\n" {
		t.Fatalf("file outside the root was changed: %q", data)
	}
	entries, _ := os.ReadDir(etc)
	if len(entries) != 3 {
		t.Fatalf("leftover files in etc: %v", entries)
	}
}

func TestWriteEtcNoDNSKeepsResolvConf(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "etc/resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver 9.9.9.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteEtc(root, &bootcfg.Config{Hostname: "h"}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(p); string(data) != "nameserver 9.9.9.9\n" {
		t.Fatalf("resolv.conf changed without DNS config: %q", data)
	}
}

func TestConsoleLogger(t *testing.T) {
	var b bytes.Buffer
	log := NewConsoleLogger(&b).With("vm", "x1")
	log.Info("disk found", "role", "banger-rootfs", "dev", "/dev/vda")
	log.Warn("no work disk", "why", "not attached")
	log.Debug("hidden")
	Fatal(&b, errors.New("mount rootfs: boom"))
	want := "banger-init: disk found vm=x1 role=banger-rootfs dev=/dev/vda\n" +
		"banger-init: WARNING: no work disk vm=x1 why=\"not attached\"\n" +
		"banger-init: FATAL: mount rootfs: boom\n"
	got := regexp.MustCompile(` uptime=[0-9]+\.[0-9]{3}s`).ReplaceAllString(b.String(), "")
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	if n := strings.Count(b.String(), " uptime="); n != 2 {
		t.Fatalf("%d log lines carry the boot time, want 2:\n%s", n, b.String())
	}
}
