package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type vmRecord struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	State          string   `json:"state"`
	Backend        string   `json:"backend"`
	AccelReason    string   `json:"accel_reason"`
	GuestIP        string   `json:"guest_ip"`
	PID            int      `json:"pid"`
	Dir            string   `json:"dir"`
	TapDevice      string   `json:"tap_device"`
	VCPUCount      int      `json:"vcpu_count"`
	MemoryMiB      int      `json:"memory_mib"`
	WorkDiskBytes  int64    `json:"work_disk_bytes"`
	PendingRestart []string `json:"pending_restart"`
	StopReason     string   `json:"stop_reason"`
}

func showVM(t *testing.T, d *daemon, name string) vmRecord {
	t.Helper()
	var vm vmRecord
	d.mustJSON(t, &vm, "vm", "show", name)
	return vm
}

// pidAlive reports whether pid runs (a zombie waiting for the host's init
// to reap it does not count).
func pidAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func TestVMLifecycle(t *testing.T) {
	d := sharedDaemon(t)
	d.must(t, "vm", "create", "--name", "life", "--image", "bb", "--memory", "256", "--vcpus", "1")
	vm := showVM(t, d, "life")
	if vm.State != "running" || !strings.HasPrefix(vm.Backend, "qemu-") || !pidAlive(vm.PID) {
		t.Fatalf("after create: %+v", vm)
	}
	var list []vmRecord
	d.mustJSON(t, &list, "vm", "list")
	found := false
	for _, v := range list {
		found = found || v.Name == "life" && v.State == "running"
	}
	if !found {
		t.Fatalf("vm list does not show life running: %+v", list)
	}
	if out := d.must(t, "vm", "exec", "life", "--", "cat", "/etc/hostname"); strings.TrimSpace(out) != "life" {
		t.Fatalf("hostname = %q", out)
	}

	// stats and logs
	var stats struct {
		Stats struct {
			State       string  `json:"state"`
			VMMRSSBytes int64   `json:"vmm_rss_bytes"`
			Uptime      float64 `json:"uptime_seconds"`
			WorkSize    int64   `json:"work_disk_size_bytes"`
		} `json:"stats"`
	}
	d.mustJSON(t, &stats, "vm", "stats", "life")
	if stats.Stats.State != "running" || stats.Stats.VMMRSSBytes <= 0 || stats.Stats.WorkSize != 8<<30 {
		t.Fatalf("stats = %+v", stats.Stats)
	}
	lifeGivesSpaceBack(t, d)
	logPath := strings.TrimSpace(d.must(t, "vm", "logs", "life"))
	if data, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(data), "banger-init: ready") {
		t.Fatalf("serial log %s lacks the ready line: %v", logPath, err)
	}

	// set: vcpus/memory pend while running; work disk grows at next start
	var set vmRecord
	d.mustJSON(t, &set, "vm", "set", "life", "--memory", "384", "--work-disk-size", "9G")
	if len(set.PendingRestart) == 0 || set.MemoryMiB != 384 {
		t.Fatalf("set while running: %+v", set)
	}
	if _, _, code := d.run("vm", "set", "life", "--work-disk-size", "1G"); code == 0 {
		t.Fatal("shrinking the work disk succeeded")
	}

	// stop, then the VMM is gone
	d.must(t, "vm", "stop", "life")
	stopped := showVM(t, d, "life")
	if stopped.State != "stopped" || pidAlive(vm.PID) {
		t.Fatalf("after stop: %+v (old pid alive %v)", stopped, pidAlive(vm.PID))
	}
	if _, _, code := d.run("vm", "exec", "life", "--", "true"); code == 0 {
		t.Fatal("exec on a stopped vm succeeded")
	}

	// start applies memory and grows the work disk with its filesystem
	d.must(t, "vm", "start", "life")
	out := d.must(t, "vm", "exec", "life", "--", "df", "-k", "/root")
	fields := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])
	kb, _ := strconv.ParseInt(fields[1], 10, 64)
	if kb < 8<<20 { // more than 8 GiB after growing to 9G
		t.Fatalf("work filesystem not grown: %s", out)
	}
	mem := d.must(t, "vm", "exec", "life", "--", "grep", "MemTotal", "/proc/meminfo")
	memKB, _ := strconv.Atoi(strings.Fields(mem)[1])
	if memKB < 300<<10 || memKB > 384<<10 {
		t.Fatalf("memory after restart: %s", mem)
	}

	// restart gives a new VMM process
	before := showVM(t, d, "life").PID
	d.must(t, "vm", "restart", "life")
	after := showVM(t, d, "life")
	if after.State != "running" || after.PID == before || pidAlive(before) {
		t.Fatalf("restart: before pid %d, after %+v", before, after)
	}

	// Running VMs keep their disks sparse: the guest never zeroes the lazily
	// initialised inode tables (8 GiB disks would grow by ~128 MiB each).
	time.Sleep(10 * time.Second)
	for _, disk := range []string{"overlay.ext4", "work.ext4"} {
		if n := duBytes(t, filepath.Join(after.Dir, disk)); n > 32<<20 {
			t.Fatalf("%s of a running vm occupies %d bytes on the host", disk, n)
		}
	}

	// kill
	d.must(t, "vm", "kill", "life", "--signal", "KILL")
	killed := showVM(t, d, "life")
	if killed.State != "stopped" || !strings.Contains(killed.StopReason, "SIGKILL") || pidAlive(after.PID) {
		t.Fatalf("after kill: %+v", killed)
	}

	// delete refuses a running vm without --force; leaves nothing
	d.must(t, "vm", "start", "life")
	running := showVM(t, d, "life")
	if _, errOut, code := d.run("vm", "delete", "life"); code == 0 || !strings.Contains(errOut, "--force") {
		t.Fatalf("delete of a running vm without --force: code %d, %s", code, errOut)
	}
	d.must(t, "vm", "delete", "--force", "life")
	if pidAlive(running.PID) {
		t.Fatal("qemu still running after delete")
	}
	if _, err := os.Stat(running.Dir); !os.IsNotExist(err) {
		t.Fatalf("vm folder left after delete: %v", err)
	}
	if running.TapDevice != "" {
		if exec.Command("ip", "link", "show", running.TapDevice).Run() == nil {
			t.Fatalf("tap %s left after delete", running.TapDevice)
		}
	}
	if _, _, code := d.run("vm", "show", "life"); code == 0 {
		t.Fatal("vm row left after delete")
	}
}

func TestVMCreateBadInput(t *testing.T) {
	d := sharedDaemon(t)
	cases := [][]string{
		{"vm", "create", "--name", "Bad_Name", "--image", "bb"},
		{"vm", "create", "--name", "ok1", "--image", "no-such-image"},
		{"vm", "create", "--name", "ok2", "--image", "bb", "--vcpus", "999"},
		{"vm", "create", "--name", "ok3", "--image", "bb", "--memory", "99999999"},
		{"vm", "create", "--name", "ok4", "--image", "bb", "--work-disk-size", "10Q"},
		{"vm", "create", "--name", "ok5", "--image", "bb", "--system-overlay-size", "-1G"},
	}
	for _, c := range cases {
		_, errOut, code := d.run(c...)
		if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
			t.Errorf("%v: exit %d, stderr %q", c, code, errOut)
		}
	}
	var list []vmRecord
	d.mustJSON(t, &list, "vm", "list")
	for _, v := range list {
		if strings.HasPrefix(v.Name, "ok") {
			t.Errorf("bad create left a vm row: %+v", v)
		}
	}
	d.must(t, "vm", "create", "--name", "dup", "--image", "bb", "--memory", "256", "--no-start")
	if _, errOut, code := d.run("vm", "create", "--name", "dup", "--image", "bb"); code == 0 || !strings.Contains(errOut, "exists") {
		t.Errorf("duplicate name: exit %d, %s", code, errOut)
	}
	d.must(t, "vm", "delete", "dup")
}

func TestTwoVMsAtOnce(t *testing.T) {
	d := sharedDaemon(t)
	var wg sync.WaitGroup
	errs := make([]string, 2)
	// pair-b has two vCPUs: under TCG its kernel boots on one and banger's
	// init starts the other before the VM is ready.
	vcpus := map[string]string{"pair-a": "1", "pair-b": "2"}
	for i, name := range []string{"pair-a", "pair-b"} {
		wg.Add(1)
		go func(i int, name string) {
			defer wg.Done()
			if out, errOut, code := d.run("vm", "create", "--name", name, "--image", "bb", "--memory", "256", "--vcpus", vcpus[name]); code != 0 {
				errs[i] = out + errOut
			}
		}(i, name)
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Fatal(e)
		}
	}
	a, b := showVM(t, d, "pair-a"), showVM(t, d, "pair-b")
	if a.GuestIP == b.GuestIP || a.PID == b.PID {
		t.Fatalf("two vms share an address or process: %+v %+v", a, b)
	}
	// Each VM says why it runs under its accelerator: the daemon's reason.
	if status := accelLine(t, d); a.AccelReason == "" || !strings.Contains(status, a.AccelReason) {
		t.Fatalf("vm show's accelerator reason %q, daemon status %q", a.AccelReason, status)
	}
	for _, n := range []string{"pair-a", "pair-b"} {
		if out := d.must(t, "vm", "exec", n, "--", "hostname"); strings.TrimSpace(out) != n {
			t.Fatalf("%s hostname %q", n, out)
		}
		if out := d.must(t, "vm", "exec", n, "--", "grep", "-c", "^processor", "/proc/cpuinfo"); strings.TrimSpace(out) != vcpus[n] {
			t.Fatalf("%s has %s vCPUs online at ready, want %s", n, strings.TrimSpace(out), vcpus[n])
		}
	}
	// Under TCG the delay loop is preset from the kernel's HZ (its config is
	// stored with it): the vCPU init starts skips the kernel's calibration.
	if b.Backend == "qemu-tcg" {
		cmdline := d.must(t, "vm", "exec", "pair-b", "--", "cat", "/proc/cmdline")
		dmesg := d.must(t, "vm", "exec", "pair-b", "--", "dmesg")
		if !strings.Contains(cmdline, " lpj=") || strings.Contains(dmesg, "calibrate_delay_direct") || !strings.Contains(dmesg, "preset value") {
			t.Fatalf("delay loop not preset: cmdline %q\n%s", cmdline, dmesg)
		}
	}
	d.must(t, "vm", "delete", "--force", "pair-a", "pair-b")
}

func TestDaemonRestartReadoptsAndSIGKILLMidCreate(t *testing.T) {
	d := newDaemon(t)
	defer d.cleanup()
	kroot := filepath.Join(cacheDir(), "kernel-import")
	d.must(t, "kernel", "pull", "debian-12-cloud")
	_ = kroot
	registerBusybox(t, d, "bb")
	d.must(t, "vm", "create", "--name", "keep", "--image", "bb", "--memory", "256", "--vcpus", "1")
	keep := showVM(t, d, "keep")

	// A graceful daemon stop leaves the VM running; the next daemon re-adopts it.
	d.stop()
	if !pidAlive(keep.PID) {
		t.Fatal("daemon stop killed the vm")
	}
	d.start(t)
	again := showVM(t, d, "keep")
	if again.State != "running" || again.PID != keep.PID {
		t.Fatalf("not re-adopted: %+v", again)
	}
	if out := d.must(t, "vm", "exec", "keep", "--", "hostname"); strings.TrimSpace(out) != "keep" {
		t.Fatalf("exec after re-adopt: %q", out)
	}

	// SIGKILL the daemon in the middle of a create, then restart: nothing orphaned.
	var op struct {
		ID string `json:"id"`
	}
	d.mustJSON(t, &op, "vm", "create", "--name", "half", "--image", "bb", "--memory", "256", "--vcpus", "1", "--detach")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var st struct {
			Stage string `json:"stage"`
		}
		d.mustJSON(t, &st, "vm", "create-status", op.ID)
		if st.Stage == "agent" || st.Stage == "boot" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	half := showVM(t, d, "half")
	d.kill()
	d.start(t)
	if _, _, code := d.run("vm", "show", "half"); code == 0 {
		t.Fatal("half-made vm row survived the restart")
	}
	if _, err := os.Stat(half.Dir); !os.IsNotExist(err) {
		t.Fatalf("half-made vm folder survived: %v", err)
	}
	if out, _ := exec.Command("pgrep", "-f", half.ID).Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("orphan qemu for the half-made vm: %s", out)
	}
	var opAfter struct {
		Done  bool   `json:"done"`
		Error string `json:"error"`
	}
	d.mustJSON(t, &opAfter, "vm", "create-status", op.ID)
	if !opAfter.Done || opAfter.Error == "" {
		t.Fatalf("interrupted operation not marked failed: %+v", opAfter)
	}
	if showVM(t, d, "keep").State != "running" {
		t.Fatal("the other vm was disturbed")
	}
}

// TestCreateCostIndependentOfImageSize: creating a VM copies no image data,
// so a 4 GiB image costs the same bytes on disk as a small one.
func TestCreateCostIndependentOfImageSize(t *testing.T) {
	d := sharedDaemon(t)
	big := filepath.Join(t.TempDir(), "big.ext4")
	if out, err := exec.Command("cp", "--sparse=always", busyboxRootfs(t), big).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	if out, err := exec.Command("resize2fs", big, "4G").CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	d.must(t, "image", "register", "--name", "big4g", "--rootfs", big, "--kernel-ref", "debian-12-cloud")
	defer d.run("image", "delete", "big4g")
	written := map[string]int64{}
	for _, img := range []string{"bb", "big4g"} {
		name := "cost-" + img
		d.must(t, "vm", "create", "--name", name, "--image", img, "--no-start")
		vm := showVM(t, d, name)
		written[img] = duBytes(t, vm.Dir)
		d.must(t, "vm", "delete", name)
	}
	if written["big4g"] > 10<<20 || written["bb"] > 10<<20 {
		t.Fatalf("create wrote more than 10 MiB: %v", written)
	}
	diff := written["big4g"] - written["bb"]
	if diff < 0 {
		diff = -diff
	}
	if diff > 1<<20 {
		t.Fatalf("create cost depends on image size: %v", written)
	}
	t.Logf("bytes on disk after create: %v", written)
}

func duBytes(t *testing.T, dir string) int64 {
	out, err := exec.Command("du", "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	return n
}

var _ = json.Marshal

// lifeGivesSpaceBack: space of files deleted in the guest goes back to the
// host, on the work disk and the system overlay alike (online discard in the
// guest, discard=unmap in QEMU).
func lifeGivesSpaceBack(t *testing.T, d *daemon) {
	t.Helper()
	alloc := func() (work, overlay int64) {
		var st struct {
			Stats struct {
				Work    int64 `json:"work_disk_allocated_bytes"`
				Overlay int64 `json:"overlay_allocated_bytes"`
			} `json:"stats"`
		}
		d.mustJSON(t, &st, "vm", "stats", "life")
		return st.Stats.Work, st.Stats.Overlay
	}
	const mib = 32
	d.must(t, "vm", "exec", "life", "--", "sh", "-c", fmt.Sprintf(
		"dd if=/dev/zero of=/root/big bs=1M count=%d 2>/dev/null && dd if=/dev/zero of=/var/big bs=1M count=%d 2>/dev/null && sync", mib, mib))
	w1, o1 := alloc()
	d.must(t, "vm", "exec", "life", "--", "sh", "-c", "rm /root/big /var/big && sync")
	var w2, o2 int64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if w2, o2 = alloc(); w1-w2 >= (mib-4)<<20 && o1-o2 >= (mib-4)<<20 {
			return
		}
	}
	t.Fatalf("deleting %d MiB on each disk: work disk %d -> %d bytes, overlay %d -> %d; want both back to the host", mib, w1, w2, o1, o2)
}
