package clitest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitSettings reads the Key=Value lines of a systemd unit (later wins).
func unitSettings(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		out[k] = v
	}
	return out
}

func TestUnitSettings(t *testing.T) {
	s := unitSettings(t, "../../packaging/bangerd.service")
	want := map[string]string{
		"ExecStart":                "/usr/local/bin/bangerd",
		"KillMode":                 "process",
		"RuntimeDirectory":         "banger",
		"RuntimeDirectoryPreserve": "yes",
		"StateDirectory":           "banger",
		"TasksMax":                 "infinity",
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("bangerd.service: %s=%q, want %q", k, s[k], v)
		}
	}
	for _, k := range []string{"PrivateTmp", "ProtectHome", "ProtectSystem", "PrivateDevices"} {
		if _, ok := s[k]; ok {
			t.Errorf("bangerd.service sets %s: VMs would inherit the namespace and users' files become unreadable", k)
		}
	}
}

func TestInstallScriptStagesFiles(t *testing.T) {
	dest := t.TempDir()
	cmd := exec.Command("../../packaging/install.sh")
	cmd.Env = append(os.Environ(), "DESTDIR="+dest, "BIN="+binDir, "PREFIX=/opt/banger")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"opt/banger/bin/banger", 0o755}, {"opt/banger/bin/bangerd", 0o755}, {"opt/banger/bin/banger-agent", 0o755},
		{"etc/systemd/system/bangerd.service", 0o644}, {"usr/lib/sysusers.d/banger.conf", 0o644},
	} {
		fi, err := os.Stat(filepath.Join(dest, f.path))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode().Perm(), f.mode)
		}
	}
	unit := filepath.Join(dest, "etc/systemd/system/bangerd.service")
	s := unitSettings(t, unit)
	if s["ExecStart"] != "/opt/banger/bin/bangerd" || s["KillMode"] != "process" {
		t.Errorf("installed unit: ExecStart=%q KillMode=%q", s["ExecStart"], s["KillMode"])
	}
	sysusers, _ := os.ReadFile(filepath.Join(dest, "usr/lib/sysusers.d/banger.conf"))
	if !strings.Contains(string(sysusers), "\ng banger -\n") {
		t.Errorf("sysusers file does not create the banger group:\n%s", sysusers)
	}

	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		// Point ExecStart at a binary that exists here, then let systemd check the unit.
		data, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		check := filepath.Join(t.TempDir(), "bangerd.service")
		fixed := strings.Replace(string(data), "/opt/banger/bin/bangerd", filepath.Join(binDir, "bangerd"), 1)
		if err := os.WriteFile(check, []byte(fixed), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("systemd-analyze", "verify", "--man=no", check).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
}

func TestInstallScriptNeedsBuiltBinaries(t *testing.T) {
	cmd := exec.Command("../../packaging/install.sh")
	cmd.Env = append(os.Environ(), "DESTDIR="+t.TempDir(), "BIN="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "run 'make build' first") {
		t.Errorf("install.sh without binaries: %v\n%s", err, out)
	}
	cmd = exec.Command("../../packaging/install.sh", "--bogus")
	cmd.Env = append(os.Environ(), "DESTDIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown option --bogus") {
		t.Errorf("install.sh --bogus: %v\n%s", err, out)
	}
}
