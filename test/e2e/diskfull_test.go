package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newSmallDiskDaemon starts a bangerd whose VM folders (STATE/vms) are on a
// tmpfs of the given size; kernels, images and the database stay on the
// ordinary disk.
func newSmallDiskDaemon(t *testing.T, size string) (*daemon, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "banger-e2e-full-")
	if err != nil {
		t.Fatal(err)
	}
	n := netIndex.Add(1)
	d := &daemon{dir: dir, socket: filepath.Join(dir, "bangerd.sock"), state: filepath.Join(dir, "state"),
		bridge: fmt.Sprintf("bge%d-%d", os.Getpid()%10000, n), subnet: fmt.Sprintf("10.%d.%d.0/24", 20+os.Getpid()%200, n), t: t}
	vms := filepath.Join(d.state, "vms")
	if err := os.MkdirAll(vms, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", vms, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := os.ReadFile(filepath.Join(dir, "bangerd.out")); err == nil {
				keep := filepath.Join(os.TempDir(), "banger-e2e-diskfull-bangerd.out")
				os.WriteFile(keep, out, 0o600)
				t.Logf("bangerd output (all of it in %s):\n%s", keep, diskfullTail(string(out), 40))
			}
		}
		d.run("vm", "delete", "--all", "--force")
		d.stop()
		unix.Unmount(vms, unix.MNT_DETACH)
		d.cleanup()
	})
	d.start(t)
	return d, vms
}

func diskfullTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func diskfullFree(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// diskfullWorkKB is the size of the guest's /root filesystem (df -k).
func diskfullWorkKB(t *testing.T, d *daemon, vm string) int64 {
	t.Helper()
	out := d.must(t, "vm", "exec", vm, "--", "df", "-k", "/root")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	fields := strings.Fields(lines[len(lines)-1])
	kb, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		t.Fatalf("df: %s", out)
	}
	return kb
}

type diskfullVM struct {
	Name        string `json:"name"`
	State       string `json:"state"`
	PauseReason string `json:"pause_reason"`
}

// TestDiskLimitsGrowAndFull, on one VM whose folder lives on a 300 MiB
// tmpfs: disk sizes over the free space are refused; the work disk grows
// inside the guest (host only extends the file) with its files kept; a
// guest that fills the host filesystem pauses, shows as "paused: host disk
// full", stays paused on vm start while the disk is full, and resumes and
// finishes its writes once space is freed.
func TestDiskLimitsGrowAndFull(t *testing.T) {
	d, vms := newSmallDiskDaemon(t, "300M")
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")

	// Limits: more than the tmpfs holds, or over the absolute cap.
	_, errOut, code := d.run("vm", "create", "--name", "huge", "--image", "bb", "--work-disk-size", "1G", "--system-overlay-size", "64M")
	if code != 1 || !strings.Contains(errOut, "free on "+vms) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
		t.Fatalf("create over the free space: exit %d: %s", code, errOut)
	}

	d.must(t, "vm", "create", "--name", "full", "--image", "bb", "--memory", "256", "--vcpus", "1",
		"--work-disk-size", "96M", "--system-overlay-size", "64M")
	if _, errOut, code := d.run("vm", "set", "full", "--work-disk-size", "15T"); code != 1 || !strings.Contains(errOut, "over the 1 TiB limit") {
		t.Fatalf("set over the cap: exit %d: %s", code, errOut)
	}

	// Growth happens in the guest: stop, extend, start; files are kept.
	guestShell(t, d, "full", "echo kept > /root/marker && sync")
	before := diskfullWorkKB(t, d, "full")
	d.must(t, "vm", "stop", "full")
	d.must(t, "vm", "set", "full", "--work-disk-size", "200M")
	d.must(t, "vm", "start", "full")
	after := diskfullWorkKB(t, d, "full")
	if before > 100<<10 || after < 180<<10 {
		t.Fatalf("work filesystem %d KiB before, %d KiB after growing to 200M", before, after)
	}
	if got := strings.TrimSpace(guestShell(t, d, "full", "cat /root/marker")); got != "kept" {
		t.Fatalf("marker after growing: %q", got)
	}

	// Fill the host: leave ~40 MiB free, then the guest writes 120 MiB.
	filler := filepath.Join(vms, ".filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, diskfullFree(t, vms)-40<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// dd.rc appears whole (written aside, then renamed): a read never sees it half-made.
	guestShell(t, d, "full", "(trap '' HUP; dd if=/dev/zero of=/root/fill bs=1M count=120 conv=fsync 2>/root/dd.err; echo $? > /root/dd.rc.new; mv /root/dd.rc.new /root/dd.rc) </dev/null >/dev/null 2>&1 &")

	var vm diskfullVM
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var list []diskfullVM
		d.mustJSON(t, &list, "vm", "list")
		if len(list) == 1 && list[0].State == "paused" {
			vm = list[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the vm never showed as paused with the host disk full: %+v (free %d)", list, diskfullFree(t, vms))
		}
		time.Sleep(time.Second)
	}
	if vm.PauseReason != "host disk full" {
		t.Fatalf("pause reason %q", vm.PauseReason)
	}
	if out := d.must(t, "vm", "list"); !strings.Contains(out, "paused: host disk full") {
		t.Fatalf("vm list:\n%s", out)
	}
	if out := d.must(t, "vm", "show", "full"); !strings.Contains(out, "paused: host disk full") {
		t.Fatalf("vm show:\n%s", out)
	}
	out, _, code := d.run("vm", "health", "full")
	if code != 1 || !strings.Contains(out, "paused: host disk full") {
		t.Fatalf("vm health: exit %d\n%s", code, out)
	}

	// Still full: start says so and the VM stays paused.
	if _, errOut, code := d.run("vm", "start", "full"); code != 1 || !strings.Contains(errOut, "free on "+vms) {
		t.Fatalf("start on a full disk: exit %d: %s", code, errOut)
	}
	var show diskfullVM
	d.mustJSON(t, &show, "vm", "show", "full")
	if show.State != "paused" {
		t.Fatalf("after a refused start: %+v", show)
	}

	// Space back: start resumes, the guest finishes its writes.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	d.must(t, "vm", "start", "full")
	var resumed diskfullVM
	d.mustJSON(t, &resumed, "vm", "show", "full")
	if resumed.State != "running" || resumed.PauseReason != "" {
		t.Fatalf("after resume: %+v", resumed)
	}
	err = retryMinute(func() error {
		out, _, code := d.run("vm", "exec", "full", "--", "cat", "/root/dd.rc")
		if code != 0 {
			return fmt.Errorf("dd not finished (exit %d)", code)
		}
		if strings.TrimSpace(out) != "0" {
			errText := d.must(t, "vm", "exec", "full", "--", "cat", "/root/dd.err")
			t.Fatalf("dd in the guest failed (%s): %s", strings.TrimSpace(out), errText)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(guestShell(t, d, "full", "stat -c %s /root/fill; cat /root/marker")); got != "125829120\nkept" {
		t.Fatalf("after resume: %q", got)
	}
	raw := d.must(t, "--json", "vm", "list")
	var list []diskfullVM
	if err := json.Unmarshal([]byte(raw), &list); err != nil || list[0].State != "running" {
		t.Fatalf("list after resume: %s", raw)
	}
}
