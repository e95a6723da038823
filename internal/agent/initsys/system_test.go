package initsys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
