package initramfs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"banger/internal/kernel/kerneltest"
)

// bootInit loads the modules in banger/modules.order with busybox insmod,
// then checks the virtio disk appeared and prints a ready line. Exiting
// makes the kernel panic, and panic=-1 plus -no-reboot stops QEMU.
const bootInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
for m in $(/bin/busybox cat /banger/modules.order); do
	if /bin/busybox insmod /$m; then echo "banger-test: loaded $m"; else echo "banger-test: FAILED $m"; fi
done
/bin/busybox sleep 1
if [ -e /sys/block/vda ]; then echo "banger-test: vda present"; fi
echo "banger-test: READY"
`

// hostKHz is the host TSC frequency estimate the kernel needs under TCG.
func hostKHz(t *testing.T) int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(mhz * 1000)
			}
		}
	}
	t.Fatal("no cpu MHz in /proc/cpuinfo")
	return 0
}

// TestBootDebianKernelQEMU boots the real Debian cloud kernel under QEMU
// microvm (TCG) with the modules archive plus a busybox init archive, and
// checks the guest loads every module and sees its virtio disk.
func TestBootDebianKernelQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM; skipped with -short")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("needs qemu-system-x86_64")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs busybox-static at /bin/busybox")
	}
	root, version := kerneltest.DebianKernel(t)
	dir := t.TempDir()

	var initrd bytes.Buffer
	paths, err := ModulesArchive(&initrd, filepath.Join(root, "lib/modules", version), version)
	if err != nil {
		t.Fatal(err)
	}
	a := newArchive(&initrd)
	if err := a.hostFile("bin/busybox", "/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	if err := a.file("init", 0o755, []byte(bootInit)); err != nil {
		t.Fatal(err)
	}
	if err := a.charDev("dev/console", 0o600, 5, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	initrdPath := filepath.Join(dir, "initrd")
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(initrdPath, initrd.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-M", "microvm,acpi=on", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot", "-nodefaults",
		"-serial", "stdio",
		"-kernel", filepath.Join(root, "boot", "vmlinuz-"+version),
		"-initrd", initrdPath,
		"-append", fmt.Sprintf("console=ttyS0 tsc_early_khz=%d reboot=t panic=-1", hostKHz(t)),
		"-drive", "id=d0,file="+disk+",format=raw,if=none",
		"-device", "virtio-blk-device,drive=d0",
	)
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()

	var console []string
	loaded := map[string]bool{}
	ready, vda := false, false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		console = append(console, line)
		if m, ok := strings.CutPrefix(line, "banger-test: loaded "); ok {
			loaded[m] = true
		}
		vda = vda || line == "banger-test: vda present"
		if line == "banger-test: READY" {
			ready = true
			break
		}
	}
	tail := strings.Join(console[max(0, len(console)-30):], "\n")
	if !ready {
		t.Fatalf("no ready line within 60 s (ctx: %v); console tail:\n%s", ctx.Err(), tail)
	}
	for _, p := range paths {
		if !loaded[p] {
			t.Errorf("module %s was not loaded; console tail:\n%s", p, tail)
		}
	}
	if !vda {
		t.Errorf("guest saw no /sys/block/vda after loading modules; console tail:\n%s", tail)
	}
}
