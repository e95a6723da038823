package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/model"
)

// forkShowVM is the VM record with the identity fields the fork test checks.
func forkShowVM(t *testing.T, d *daemon, name string) model.VMRecord {
	t.Helper()
	var res model.VMRecord
	d.mustJSON(t, &res, "vm", "show", name)
	return res
}

// forkStartWithAgent restarts d's daemon with another guest agent binary.
func forkStartWithAgent(t *testing.T, d *daemon, agent string) {
	t.Helper()
	d.stop()
	log, err := os.OpenFile(filepath.Join(d.dir, "bangerd.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d.proc = exec.Command(filepath.Join(binDir, "bangerd"), "--socket", d.socket, "--state-dir", d.state, "--agent", agent)
	d.proc.Env = d.env()
	d.proc.Stdout, d.proc.Stderr = log, log
	if err := d.proc.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.proc.Wait(); log.Close() }()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, _, code := d.run("ping"); code == 0 {
			return
		}
	}
	t.Fatal("bangerd with another agent did not answer")
}

func TestForkClones(t *testing.T) {
	d := newDaemon(t)
	t.Cleanup(d.cleanup)
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb")
	d.must(t, "vm", "create", "--name", "par", "--image", "bb", "--memory", "256", "--vcpus", "1")
	repo := testRepo(t)
	prepare(t, d, "par", repo, "--guest-path", "/root/ws")
	d.must(t, "vm", "exec", "par", "--", "sh", "-c", suspendCounterScript)
	counterPID, _ := suspendReadCounter(t, d, "par")
	parent := forkShowVM(t, d, "par")

	var res api.VMForkResult
	if out, errOut, code := d.run("--json", "vm", "fork", "par", "--count", "3", "--name", "kid"); code != 0 {
		console, _ := os.ReadFile(filepath.Join(parent.Dir, "serial.log"))
		dlog, _ := os.ReadFile(filepath.Join(d.dir, "bangerd.out"))
		if len(dlog) > 6000 {
			dlog = dlog[len(dlog)-6000:]
		}
		t.Fatalf("vm fork: exit %d: %s\nparent's console:\n%s\ndaemon log:\n%s", code, errOut, console, dlog)
	} else if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("vm fork: %v: %s", err, out)
	}
	if len(res.VMs) != 3 || res.Snapshot.Name == "" {
		t.Fatalf("fork result: %+v", res)
	}
	ips, macs, keys, randoms := map[string]bool{parent.GuestIP: true}, map[string]bool{parent.MAC: true}, map[string]bool{parent.SSHHostKey: true}, map[string]bool{}
	for i, c := range res.VMs {
		name := "kid-" + string(rune('1'+i))
		vm := forkShowVM(t, d, name)
		if vm.State != model.VMRunning || vm.ForkedFrom != res.Snapshot.ID {
			t.Fatalf("clone %s: %+v", name, vm)
		}
		if c.Name != name || ips[vm.GuestIP] || macs[vm.MAC] || keys[vm.SSHHostKey] {
			t.Fatalf("clone %s shares an identity: ip %s mac %s key %s (seen %v %v)", name, vm.GuestIP, vm.MAC, vm.SSHHostKey, ips, macs)
		}
		ips[vm.GuestIP], macs[vm.MAC], keys[vm.SSHHostKey] = true, true, true
		out := d.must(t, "vm", "exec", name, "--", "sh", "-c", "hostname; cat /etc/hostname; cat /sys/class/net/eth0/address; ip -4 -o addr show eth0 2>/dev/null || ifconfig eth0")
		f := strings.Fields(out)
		if len(f) < 3 || f[0] != name || f[1] != name || f[2] != vm.MAC || !strings.Contains(out, vm.GuestIP) {
			t.Fatalf("clone %s sees itself as %q (want hostname %s, mac %s, ip %s)", name, out, name, vm.MAC, vm.GuestIP)
		}
		r := strings.TrimSpace(d.must(t, "vm", "exec", name, "--", "sh", "-c", "head -c 32 /dev/urandom | od -An -tx1"))
		if randoms[r] {
			t.Fatalf("clone %s drew the same random bytes as another clone: %s", name, r)
		}
		randoms[r] = true
		// The parent's running process came along.
		if pid, _ := suspendReadCounter(t, d, name); pid != counterPID {
			t.Fatalf("clone %s: counter pid %s, parent's was %s", name, pid, counterPID)
		}
		// The prepared workspace is there; each clone edits it its own way.
		d.must(t, "vm", "exec", name, "--", "sh", "-c", "test -d /root/ws && echo "+name+" > /root/ws/"+name+".txt")
	}
	for i := range res.VMs {
		name := "kid-" + string(rune('1'+i))
		exp := export(t, d, name)
		if !exp.HasChanges || !slices.Equal(exp.ChangedFiles, []string{name + ".txt"}) {
			t.Fatalf("export of %s: changed %v, want only %s.txt", name, exp.ChangedFiles, name)
		}
	}
	// The parent runs on, unaffected.
	if vm := forkShowVM(t, d, "par"); vm.State != model.VMRunning || vm.GuestIP != parent.GuestIP || vm.PID != parent.PID {
		t.Fatalf("parent after fork: %+v", vm)
	}
	if out := strings.TrimSpace(d.must(t, "vm", "exec", "par", "--", "hostname")); out != "par" {
		t.Fatalf("parent hostname %q", out)
	}
	if exp := export(t, d, "par"); exp.HasChanges {
		t.Fatalf("parent export after the clones' edits: %v", exp.ChangedFiles)
	}

	// The snapshot is the owner's, private, and kept while clones map it.
	var sn model.Snapshot
	d.mustJSON(t, &sn, "snapshot", "show", res.Snapshot.Name)
	for _, f := range []string{"ram", "state.bin", "overlay.ext4", "work.ext4"} {
		fi, err := os.Stat(filepath.Join(sn.Dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("snapshot file %s: %v %v", f, fi, err)
		}
	}
	if _, errOut, code := d.run("snapshot", "delete", sn.Name); code == 0 || !strings.Contains(errOut, "still mapped by running clones") {
		t.Fatalf("delete of a mapped snapshot: exit %d, %q", code, errOut)
	}

	// A restore whose recorded build differs (here: the guest agent in the
	// initrd) is refused, and leaves nothing behind.
	agent := filepath.Join(t.TempDir(), "banger-agent")
	data, err := os.ReadFile(filepath.Join(binDir, "banger-agent"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agent, append(data, []byte("another build")...), 0o755); err != nil {
		t.Fatal(err)
	}
	forkStartWithAgent(t, d, agent)
	_, errOut, code := d.run("vm", "fork", "--from-snapshot", sn.Name, "--name", "odd")
	if code == 0 || !strings.Contains(errOut, "cannot be restored here") || !strings.Contains(errOut, "initrd") {
		t.Fatalf("fork with another agent: exit %d, %q", code, errOut)
	}
	if _, _, code := d.run("vm", "show", "odd-1"); code == 0 {
		t.Fatal("a refused fork left a vm")
	}

	for i := range res.VMs {
		d.must(t, "vm", "delete", "--force", "kid-"+string(rune('1'+i)))
	}
	d.must(t, "snapshot", "delete", sn.Name)
	if _, err := os.Stat(sn.Dir); !os.IsNotExist(err) {
		t.Fatalf("snapshot folder left after delete: %v", err)
	}
}
