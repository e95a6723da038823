package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevImageTools checks what a newcomer reaches for first in a VM made from
// the default `image build debian` image: rsync over the ssh config from
// `vm ssh-config`, ip, ping, ps/free, python3 and curl.
func TestDevImageTools(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Fatalf("rsync not installed on the host (scripts/install-deps.sh): %v", err)
	}
	d := sharedDaemon(t)
	img := debianImage(t, d)
	const vm = "devtools"
	d.must(t, "vm", "create", "--name", vm, "--image", img, "--memory", "512", "--vcpus", "2")
	defer d.run("vm", "delete", "--force", vm)
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "ssh_config")
	if err := os.WriteFile(cfg, []byte(d.must(t, "vm", "ssh-config", vm)), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("rsync -e ssh", func(t *testing.T) {
		src := filepath.Join(tmp, "tree")
		os.MkdirAll(filepath.Join(src, "sub"), 0o755)
		os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha\n"), 0o644)
		os.WriteFile(filepath.Join(src, "sub", "b.txt"), []byte("beta\n"), 0o600)
		cmd := exec.Command("rsync", "-a", "-e", "ssh -F "+cfg+" -o BatchMode=yes", src+"/", vm+":/root/synced/")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rsync to the guest: %v\n%s", err, out)
		}
		got := guestShell(t, d, vm, "cat /root/synced/a.txt /root/synced/sub/b.txt; stat -c %a /root/synced/sub/b.txt")
		if got != "alpha\nbeta\n600\n" {
			t.Errorf("synced tree in the guest: %q", got)
		}
		back := filepath.Join(tmp, "back")
		cmd = exec.Command("rsync", "-a", "-e", "ssh -F "+cfg+" -o BatchMode=yes", vm+":/root/synced/", back+"/")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rsync from the guest: %v\n%s", err, out)
		}
		if b, _ := os.ReadFile(filepath.Join(back, "sub", "b.txt")); string(b) != "beta\n" {
			t.Errorf("rsync back: %q", b)
		}
	})

	t.Run("ip, ping, ps, free", func(t *testing.T) {
		out := guestShell(t, d, vm, "ip -br addr show eth0 && ping -c 1 -W 5 127.0.0.1 >/dev/null && echo pinged && ps -e -o comm= | head -n 1 && free -m | head -n 1")
		if !strings.Contains(out, "eth0") || !strings.Contains(out, "UP") || !strings.Contains(out, "pinged") || !strings.Contains(out, "total") {
			t.Errorf("tools in the guest printed:\n%s", out)
		}
	})

	t.Run("python3 and curl", func(t *testing.T) {
		script := `cd /root && echo served > page.txt && (python3 -m http.server 8123 --bind 127.0.0.1 >/dev/null 2>&1 &) &&
for i in $(seq 1 100); do curl -fsS http://127.0.0.1:8123/page.txt && exit 0; sleep 0.2; done; exit 1`
		if out := guestShell(t, d, vm, script); strings.TrimSpace(out) != "served" {
			t.Errorf("curl from python3's server: %q", out)
		}
	})
}
