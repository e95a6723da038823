package qemu

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
	"banger/internal/vmm/vmmtest"
)

// procStatus reads the named fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
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

// A confined QEMU runs as the vmm user with no capabilities, no new
// privileges and seccomp, chrooted into its run dir, and the console still
// reaches the serial log.
func TestQEMUConfined(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("confinement needs root")
	}
	u, err := vmmproc.EnsureSysUser(vmmproc.DefaultVMMUser)
	if err != nil {
		t.Fatalf("vmm user: %v", err)
	}
	b := testBackend(t, Options{RunAs: &u, SerialLogMax: 4096})
	spec := testSpec(t, vmmtest.Kernel(t))
	spec.SerialLog = filepath.Join(filepath.Dir(spec.RunDir), "serial.log")
	p := start(t, b, spec)

	st := procStatus(t, p.PID)
	want := strconv.Itoa(u.UID)
	if f := strings.Fields(st["Uid"]); len(f) != 4 || f[0] != want || f[1] != want || f[2] != want || f[3] != want {
		t.Errorf("Uid: %q, want %s four times", st["Uid"], want)
	}
	wantG := strconv.Itoa(u.GID)
	if f := strings.Fields(st["Gid"]); len(f) != 4 || f[0] != wantG || f[3] != wantG {
		t.Errorf("Gid: %q, want %s", st["Gid"], wantG)
	}
	if st["Groups"] != wantG {
		t.Errorf("Groups: %q, want only %s", st["Groups"], wantG)
	}
	for _, k := range []string{"CapPrm", "CapEff", "CapAmb"} {
		if st[k] != "0000000000000000" {
			t.Errorf("%s: %s, want none", k, st[k])
		}
	}
	if st["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs: %q", st["NoNewPrivs"])
	}
	if f := strings.Fields(st["NSpid"]); len(f) != 2 || f[1] != "1" {
		t.Errorf("NSpid: %q, want pid 1 of its own pid namespace", st["NSpid"])
	}
	if pid, err := vmmproc.ReadPIDFile(filepath.Join(spec.RunDir, PIDFile)); err != nil || pid != p.PID {
		t.Errorf("pidfile = %d, %v; want the host pid %d", pid, err, p.PID)
	}
	if _, _, seccomp := b.Confinement(); seccomp && st["Seccomp"] != "2" {
		t.Errorf("Seccomp: %q, want 2 (filter)", st["Seccomp"])
	}
	if root, err := os.Readlink("/proc/" + strconv.Itoa(p.PID) + "/root"); err != nil || root != spec.RunDir {
		t.Errorf("root of qemu = %q, %v; want %s", root, err, spec.RunDir)
	}
	if fi, err := os.Stat(spec.RunDir); err != nil || fi.Mode().Perm() != 0o711 { // user-mode networking: 0711
		t.Errorf("run dir mode %v, %v", fi.Mode().Perm(), err)
	}
	// Pausing and resuming (as after a host disk full) needs no file the
	// confined QEMU can no longer open.
	for _, cmd := range []struct{ name, want string }{{"stop", "paused"}, {"cont", "running"}} {
		err := withQMP(context.Background(), spec.RunDir, func(ctx context.Context, c *QMP) error {
			return c.Execute(ctx, cmd.name, nil, nil)
		})
		if s, serr := status(context.Background(), spec.RunDir); err != nil || serr != nil || s.Status != cmd.want {
			t.Errorf("qmp %s: %v; status %+v, %v; want %s", cmd.name, err, s, serr, cmd.want)
		}
	}
	// The console reaches the log through the daemon's reader, capped.
	waitForLog(t, spec.SerialLog+".1", "Linux version")
	for _, name := range []string{spec.SerialLog, spec.SerialLog + ".1"} {
		if fi, err := os.Stat(name); err != nil || fi.Size() > 4096 {
			t.Errorf("%s: %v, size over the 4 KiB cap", name, err)
		}
	}
	if err := b.Quit(context.Background(), spec.RunDir); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	assertNoRuntimeFiles(t, spec.RunDir)
}

// A confined QEMU on a tap gets the tap as a descriptor and runs in an empty
// network namespace of its own; the tap works and goes with QEMU.
func TestQEMUConfinedTap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("confinement needs root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("tap networking needs /dev/net/tun: %v", err)
	}
	u, err := vmmproc.EnsureSysUser(vmmproc.DefaultVMMUser)
	if err != nil {
		t.Fatalf("vmm user: %v", err)
	}
	b := testBackend(t, Options{RunAs: &u, QuitTimeout: time.Second})
	spec := testSpec(t, vmmtest.Kernel(t))
	tap := "bgc" + strconv.Itoa(os.Getpid()%1000000)
	spec.Net = &vmm.Net{Tap: tap, MAC: "02:00:0a:00:00:0a"}
	p := start(t, b, spec)
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	qemuNS, err := os.Readlink("/proc/" + strconv.Itoa(p.PID) + "/ns/net")
	if err != nil || qemuNS == hostNS {
		t.Errorf("qemu network namespace %q (%v), want its own (host %s)", qemuNS, err, hostNS)
	}
	if _, err := os.Stat("/sys/class/net/" + tap); err != nil {
		t.Fatalf("tap %s not attached: %v", tap, err)
	}
	if fi, err := os.Stat(spec.RunDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("run dir mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	// The daemon's signals reach QEMU, pid 1 of its namespace: a stopped
	// QEMU (no QMP answer) is killed by Quit.
	state := func() string {
		for i := 0; i < 100; i++ { // signal delivery is asynchronous; bounded poll
			st := statFields(t, p.PID)[0]
			if st != "R" && st != "S" || i == 99 {
				return st
			}
			time.Sleep(20 * time.Millisecond)
		}
		return ""
	}
	if err := b.Signal(spec.RunDir, syscall.SIGSTOP); err != nil {
		t.Fatalf("Signal SIGSTOP: %v", err)
	}
	if st := state(); st != "T" {
		t.Fatalf("state after SIGSTOP: %s, want T", st)
	}
	if err := b.Signal(spec.RunDir, syscall.SIGCONT); err != nil {
		t.Fatalf("Signal SIGCONT: %v", err)
	}
	if s, err := status(context.Background(), spec.RunDir); err != nil || s.Status != "running" {
		t.Fatalf("after SIGCONT: qmp status %+v, %v", s, err)
	}
	if err := b.Signal(spec.RunDir, syscall.SIGSTOP); err != nil {
		t.Fatalf("Signal SIGSTOP: %v", err)
	}
	if err := b.Quit(context.Background(), spec.RunDir); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	if !vmmproc.Exited(p.PID) {
		t.Errorf("pid %d still running after Quit", p.PID)
	}
	// The kernel unregisters a closed tap asynchronously: give it a moment.
	var statErr error
	for i := 0; i < 50; i++ {
		if _, statErr = os.Stat("/sys/class/net/" + tap); errors.Is(statErr, os.ErrNotExist) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("tap %s outlived qemu (stat: %v)", tap, statErr)
	}
}

// When the guest makes QEMU exit (panic=-1 with -no-reboot; "Kernel Offset"
// is the last line the kernel prints before it reboots), Wait returns
// only once the console's last bytes are in the serial log: a failed
// create quotes them right after.
func TestQEMUConsoleDrainedOnExit(t *testing.T) {
	b := testBackend(t, Options{})
	spec := testSpec(t, vmmtest.Kernel(t))
	spec.Cmdline = "console=ttyS0 panic=-1"
	start(t, b, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.Wait(ctx, spec.RunDir); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	data, err := os.ReadFile(spec.SerialLog)
	if err != nil || !strings.Contains(string(data), "Kernel Offset:") {
		t.Fatalf("serial log after Wait lacks the panic's last line (Kernel Offset) (%v):\n%s", err, data)
	}
}

// SIGTERM from the daemon stops a confined QEMU (pid 1 of its namespace,
// which gets only the signals it handles, and SIGKILL/SIGSTOP).
func TestQEMUConfinedSignal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("confinement needs root")
	}
	u, err := vmmproc.EnsureSysUser(vmmproc.DefaultVMMUser)
	if err != nil {
		t.Fatalf("vmm user: %v", err)
	}
	b := testBackend(t, Options{RunAs: &u})
	spec := testSpec(t, vmmtest.Kernel(t))
	p := start(t, b, spec)
	if err := b.Signal(spec.RunDir, syscall.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Wait(ctx, spec.RunDir); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if !vmmproc.Exited(p.PID) {
		t.Errorf("pid %d still running after SIGTERM and Wait", p.PID)
	}
}
