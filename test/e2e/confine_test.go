package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// confineLogMax is the serial log cap the confinement test's daemon runs with.
const confineLogMax = 64 << 10

// confineStatus reads /proc/PID/status into a map.
func confineStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("qemu pid %d: %v", pid, err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// confineCheckQEMU asserts that vm's QEMU runs as the banger-vmm user with
// no capabilities, no new privileges, seccomp (this QEMU has it) and its
// run folder as root.
func confineCheckQEMU(t *testing.T, vm vmRecord) {
	t.Helper()
	u, err := user.Lookup("banger-vmm")
	if err != nil {
		t.Fatalf("the daemon did not create the banger-vmm user: %v", err)
	}
	st := confineStatus(t, vm.PID)
	for _, f := range strings.Fields(st["Uid"]) {
		if f != u.Uid {
			t.Errorf("qemu Uid: %q, want %s (banger-vmm) for real, effective, saved and fs", st["Uid"], u.Uid)
			break
		}
	}
	for _, f := range strings.Fields(st["Gid"]) {
		if f != u.Gid {
			t.Errorf("qemu Gid: %q, want %s", st["Gid"], u.Gid)
			break
		}
	}
	if st["Groups"] != u.Gid {
		t.Errorf("qemu Groups: %q, want only %s", st["Groups"], u.Gid)
	}
	if st["CapEff"] != "0000000000000000" || st["CapPrm"] != "0000000000000000" {
		t.Errorf("qemu capabilities: eff %s prm %s, want none", st["CapEff"], st["CapPrm"])
	}
	if st["NoNewPrivs"] != "1" {
		t.Errorf("qemu NoNewPrivs: %q, want 1", st["NoNewPrivs"])
	}
	if f := strings.Fields(st["NSpid"]); len(f) != 2 || f[1] != "1" {
		t.Errorf("qemu NSpid: %q, want pid 1 of its own pid namespace", st["NSpid"])
	}
	if !confineQEMUHasSeccomp() {
		t.Log("this qemu has no -sandbox (seccomp): the filter is not checked")
	} else if st["Seccomp"] != "2" {
		t.Errorf("qemu Seccomp: %q, want 2 (filter mode)", st["Seccomp"])
	}
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	if ns, err := os.Readlink("/proc/" + strconv.Itoa(vm.PID) + "/ns/net"); err != nil || ns == hostNS {
		t.Errorf("qemu network namespace %q (%v), want its own, not the host's %s", ns, err, hostNS)
	}
	runDir := filepath.Join(vm.Dir, "run")
	if root, err := os.Readlink("/proc/" + strconv.Itoa(vm.PID) + "/root"); err != nil || root != runDir {
		t.Errorf("qemu's root is %q (%v), want its run folder %s", root, err, runDir)
	}
	if fi, err := os.Stat(runDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("run folder mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	// Nothing in the VM folder belongs to the vmm user or is open to others.
	filepath.Walk(vm.Dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && st.Uid != 0 {
			t.Errorf("%s is owned by uid %d, want root", path, st.Uid)
		}
		if fi.Mode().Type() != os.ModeSocket && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want root-only", path, fi.Mode().Perm())
		}
		return nil
	})
}

// confineQEMUHasSeccomp reports whether the installed QEMU takes -sandbox.
func confineQEMUHasSeccomp() bool {
	return exec.Command("qemu-system-x86_64", "-sandbox", "on", "-version").Run() == nil
}

// confineLogSizes fails when a serial log file is over the cap or a second
// rotated file exists, and returns the current log's content.
func confineLogSizes(t *testing.T, logPath string) []byte {
	t.Helper()
	for _, name := range []string{logPath, logPath + ".1"} {
		if fi, err := os.Stat(name); err == nil && fi.Size() > confineLogMax {
			t.Errorf("%s is %d bytes, over the %d cap", name, fi.Size(), confineLogMax)
		}
	}
	if _, err := os.Stat(logPath + ".2"); err == nil {
		t.Errorf("%s.2 exists; one rotated file is kept", logPath)
	}
	data, _ := os.ReadFile(logPath)
	return data
}

// confineWaitLog polls the serial log until it contains want (bounded).
func confineWaitLog(t *testing.T, logPath, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if bytes.Contains(confineLogSizes(t, logPath), []byte(want)) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("serial log %s never showed %q", logPath, want)
}

// confineFollower runs `banger vm logs -f NAME` and collects its output.
type confineFollower struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (f *confineFollower) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(p)
}

func (f *confineFollower) has(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Contains(f.out.Bytes(), []byte(s))
}

// TestQEMUConfinedSerialLogCapped: QEMU runs unprivileged and filtered; a
// guest flooding its console leaves the serial logs under the cap while
// `vm logs -f` follows the rotations; stop/start and a daemon restart keep
// the confinement and the console.
func TestQEMUConfinedSerialLogCapped(t *testing.T) {
	d := newDaemonEnv(t, "BANGER_SERIAL_LOG_MAX=64K")
	defer d.cleanup()
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")
	d.must(t, "vm", "create", "--name", "cf", "--image", "bb", "--memory", "256", "--vcpus", "1")
	vm := showVM(t, d, "cf")
	confineCheckQEMU(t, vm)
	logPath := strings.TrimSpace(d.must(t, "vm", "logs", "cf"))
	confineWaitLog(t, logPath, "banger-init: ready")
	if out := d.must(t, "vm", "exec", "cf", "--", "hostname"); strings.TrimSpace(out) != "cf" {
		t.Fatalf("hostname %q", out)
	}

	// vm logs -f follows while the guest floods its console (3 MB, about 46
	// times the cap) and then prints a marker.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follower := &confineFollower{}
	follow := exec.CommandContext(ctx, filepath.Join(binDir, "banger"), "--socket", d.socket, "vm", "logs", "-f", "cf")
	follow.Env, follow.Stdout = d.env(), follower
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer follow.Wait()
	d.must(t, "vm", "exec", "cf", "--", "sh", "-c",
		"yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c 3000000 > /dev/console; echo FLOOD-DONE > /dev/console")
	confineWaitLog(t, logPath, "FLOOD-DONE")
	if _, err := os.Stat(logPath + ".1"); err != nil {
		t.Errorf("no rotated log after the flood: %v", err)
	}
	var total int64
	for _, name := range []string{logPath, logPath + ".1"} {
		if fi, err := os.Stat(name); err == nil {
			total += fi.Size()
		}
	}
	t.Logf("serial logs hold %d bytes after a 3 MB flood (cap %d per file)", total, confineLogMax)
	for i := 0; i < 120 && !follower.has("FLOOD-DONE"); i++ {
		time.Sleep(250 * time.Millisecond)
	}
	if !follower.has("FLOOD-DONE") {
		t.Error("vm logs -f did not follow the log across its rotations")
	}
	cancel()

	// stop/start: a new confined QEMU, the VM works.
	d.must(t, "vm", "stop", "cf")
	d.must(t, "vm", "start", "cf")
	vm = showVM(t, d, "cf")
	confineCheckQEMU(t, vm)
	if out := d.must(t, "vm", "exec", "cf", "--", "hostname"); strings.TrimSpace(out) != "cf" {
		t.Fatalf("hostname after restart %q", out)
	}

	// A daemon restart re-adopts the VM and re-attaches its console.
	d.stop()
	if !pidAlive(vm.PID) {
		t.Fatal("daemon stop killed the vm")
	}
	d.start(t)
	again := showVM(t, d, "cf")
	if again.State != "running" || again.PID != vm.PID {
		t.Fatalf("not re-adopted: %+v", again)
	}
	d.must(t, "vm", "exec", "cf", "--", "sh", "-c", "echo AFTER-READOPT > /dev/console")
	confineWaitLog(t, logPath, "AFTER-READOPT")
	confineCheckQEMU(t, again)
	d.must(t, "vm", "delete", "--force", "cf")
}

// TestQEMUConfinedUserNetDNS: with user-mode networking the confined QEMU
// (chrooted) still forwards the guest's DNS queries: libslirp reads the
// copy of /etc/resolv.conf banger puts in the chroot.
func TestQEMUConfinedUserNetDNS(t *testing.T) {
	const name = "deb.debian.org"
	out, err := exec.Command("getent", "hosts", name).Output()
	if err != nil || len(strings.Fields(string(out))) == 0 {
		t.Skipf("the host cannot resolve %s: %v", name, err)
	}
	addr := strings.Fields(string(out))[0]
	d := newDaemonEnv(t, "BANGER_NETWORK=user")
	defer d.cleanup()
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")
	d.must(t, "vm", "create", "--name", "dns", "--image", "bb", "--memory", "256", "--vcpus", "1", "--nat")
	vm := showVM(t, d, "dns")
	st := confineStatus(t, vm.PID)
	if u, err := user.Lookup("banger-vmm"); err != nil || !strings.HasPrefix(st["Uid"], u.Uid+"\t") {
		t.Errorf("qemu Uid %q, want banger-vmm's (%v)", st["Uid"], err)
	}
	got := d.must(t, "vm", "exec", "dns", "--", "nslookup", name)
	if !strings.Contains(got, addr) {
		t.Errorf("guest nslookup %s through QEMU's DNS: %q, want %s", name, got, addr)
	}
	d.must(t, "vm", "delete", "--force", "dns")
}
