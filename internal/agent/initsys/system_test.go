package initsys

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	in := `22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/mnt/lower
30 22 254:16 / /root rw,relatime shared:9 - ext4 /dev/vdc rw
31 22 254:0 / /run/banger/my\040dir rw - ext4 /dev/vda ro
`
	got, err := ParseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Target: "/", FSType: "overlay", Source: "overlay"},
		{Target: "/root", FSType: "ext4", Source: "/dev/vdc"},
		{Target: "/run/banger/my dir", FSType: "ext4", Source: "/dev/vda"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if _, err := ParseMountinfo(strings.NewReader("garbage line\n")); err == nil {
		t.Fatal("bad line accepted")
	}
}

func TestCanPowerOff(t *testing.T) {
	dir := t.TempDir()
	if CanPowerOff(dir) {
		t.Fatal("no ACPI tables: want false")
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	write("FACP", "x")
	write("DSDT", "DSDT....\x08_S3_\x12")
	if CanPowerOff(dir) {
		t.Fatal("DSDT without _S5_: want false")
	}
	write("DSDT", "DSDT....\x08_S5_\x12\x06")
	if !CanPowerOff(dir) {
		t.Fatal("FADT and _S5_: want true")
	}
}

func TestFstabHas(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fstab")
	content := "# /tmp tmpfs\nUUID=1 / ext4 defaults 0 1\ntmpfs /tmp/ tmpfs defaults 0 0\n"
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if !fstabHas(p, "/tmp") || fstabHas(p, "/var") || fstabHas(p+".missing", "/tmp") {
		t.Fatal("fstabHas gave a wrong answer")
	}
}

func TestSetProcessEnv(t *testing.T) {
	t.Setenv("BANGER_TEST_LEFTOVER", "1") // restored by t.Setenv cleanup
	saved := os.Environ()
	t.Cleanup(func() {
		os.Clearenv()
		for _, kv := range saved {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
	})
	setProcessEnv([]string{"LANG=C.UTF-8", "PATH=/opt/bin:/usr/bin"})
	if os.Getenv("PATH") != "/opt/bin:/usr/bin" || os.Getenv("HOME") != "/root" || os.Getenv("BANGER_TEST_LEFTOVER") != "" {
		t.Fatalf("env = %v", os.Environ())
	}
	setProcessEnv(nil)
	if os.Getenv("PATH") != DefaultPath {
		t.Fatalf("PATH = %q, want default", os.Getenv("PATH"))
	}
}
