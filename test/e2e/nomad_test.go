package e2e

// The Nomad task driver (nomad-driver/, its own Go module) end to end: a
// real Nomad agent (built once from the Go module proxy and cached) runs
// examples/nomad/sandbox.nomad.hcl on a real bangerd. Only binaries are run
// from here, so the main module does not depend on Nomad.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// nomadVersion is the Nomad the driver is built against (nomad-driver/go.mod),
// which the test also runs.
func nomadVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../nomad-driver/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/hashicorp/nomad" {
			return f[1]
		}
	}
	t.Fatal("nomad-driver/go.mod requires no github.com/hashicorp/nomad")
	return ""
}

// nomadBinary returns the cached Nomad (scripts/test.sh builds it before the
// tests), building it when missing (from the Go module proxy; minutes on two
// cores). It skips when Nomad cannot be built here.
func nomadBinary(t *testing.T) string {
	t.Helper()
	version := nomadVersion(t)
	bin := filepath.Join(cacheDir(), "nomad-"+strings.TrimPrefix(version, "v"), "nomad")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	script, _ := filepath.Abs("../../nomad-driver/scripts/build-nomad.sh")
	out, err := exec.Command(script, bin, version).CombinedOutput()
	if err != nil {
		t.Skipf("nomad %s cannot be built here (%v): %s", version, err, lastLine(out))
	}
	return bin
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// nomadAgent is one Nomad server+client agent with a persistent data folder,
// so it can be restarted with its tasks still running.
type nomadAgent struct {
	bin, dir, config, addr string
	proc                   *exec.Cmd
	log                    *os.File
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func newNomadAgent(t *testing.T, bin, pluginDir, socket string) *nomadAgent {
	t.Helper()
	dir := t.TempDir()
	p := freePorts(t, 3)
	a := &nomadAgent{bin: bin, dir: dir, config: filepath.Join(dir, "agent.hcl"), addr: fmt.Sprintf("http://127.0.0.1:%d", p[0])}
	conf := fmt.Sprintf(`
data_dir   = %q
plugin_dir = %q
bind_addr  = "127.0.0.1"
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}
log_level  = "INFO"
ports {
  http = %d
  rpc  = %d
  serf = %d
}
server {
  enabled          = true
  bootstrap_expect = 1
}
client {
  enabled = true
  servers = ["127.0.0.1:%d"]
  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}
plugin "banger-nomad-driver" {
  config {
    socket             = %q
    fingerprint_period = "2s"
  }
}
`, filepath.Join(dir, "data"), pluginDir, p[0], p[1], p[2], p[1], socket)
	if err := os.WriteFile(a.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	a.start(t)
	t.Cleanup(func() { a.stop(); a.unmount() })
	return a
}

func (a *nomadAgent) start(t *testing.T) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(a.dir, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	a.log = log
	a.proc = exec.Command(a.bin, "agent", "-config", a.config)
	a.proc.Stdout, a.proc.Stderr = log, log
	a.proc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.proc.Start(); err != nil {
		t.Fatal(err)
	}
	go a.proc.Wait()
}

// stop interrupts the agent (its tasks keep running) and then ends its
// process group (the agent and its plugin processes).
func (a *nomadAgent) stop() {
	if a.proc == nil || a.proc.Process == nil {
		return
	}
	a.proc.Process.Signal(os.Interrupt)
	for i := 0; i < 300 && a.proc.ProcessState == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(-a.proc.Process.Pid, syscall.SIGKILL)
	a.log.Close()
	a.proc = nil
}

// unmount removes the mounts the Nomad client left in its data folder
// (each task's secrets and private tmpfs), deepest first.
func (a *nomadAgent) unmount() {
	data, _ := os.ReadFile("/proc/self/mounts")
	lines := strings.Split(string(data), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if f := strings.Fields(lines[i]); len(f) > 1 && strings.HasPrefix(f[1], a.dir+"/") {
			syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
}

func (a *nomadAgent) logTail() string {
	b, _ := os.ReadFile(filepath.Join(a.dir, "agent.log"))
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// get decodes a Nomad HTTP API answer into v.
func (a *nomadAgent) get(path string, v any) error {
	resp, err := http.Get(a.addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// cli runs the nomad CLI against the agent.
func (a *nomadAgent) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, args...)
	cmd.Env = append(os.Environ(), "NOMAD_ADDR="+a.addr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// waitFor polls cond until it holds or the (generous) bound passes; the
// bound only keeps a broken run from hanging, it asserts no speed.
func waitFor(t *testing.T, a *nomadAgent, what string, bound time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(bound)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(time.Second)
	}
	t.Fatalf("%s: not reached (last: %s)\nagent log tail:\n%s", what, last, a.logTail())
}

// execTTY runs `nomad alloc exec -i -t` on a terminal of its own, as a
// user at a shell would, and returns what it printed.
func (a *nomadAgent) execTTY(t *testing.T, allocID string, args ...string) string {
	t.Helper()
	cmd := exec.Command(a.bin, append([]string{"alloc", "exec", "-i", "-t", "-task", "vm", allocID}, args...)...)
	cmd.Env = append(os.Environ(), "NOMAD_ADDR="+a.addr)
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(tty, 1<<20)) // ends with EIO once the command exits
		done <- b
	}()
	select {
	case out := <-done:
		cmd.Wait()
		return string(out)
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("nomad alloc exec -t did not finish")
		return ""
	}
}

type nomadAlloc struct {
	ID           string
	ClientStatus string
	TaskStates   map[string]struct {
		State    string
		Restarts int
		Failed   bool
		Events   []struct{ Type, DisplayMessage string }
	}
}

func (a *nomadAgent) allocs(t *testing.T) []nomadAlloc {
	var allocs []nomadAlloc
	if err := a.get("/v1/job/sandbox/allocations", &allocs); err != nil {
		return nil
	}
	return allocs
}

func nomadVMs(t *testing.T, d *daemon) []vmRecord {
	var vms []vmRecord
	d.mustJSON(t, &vms, "vm", "list")
	var mine []vmRecord
	for _, vm := range vms {
		if strings.HasPrefix(vm.Name, "nomad-") {
			mine = append(mine, vm)
		}
	}
	return mine
}

// TestNomadDriver: examples/nomad/sandbox.nomad.hcl starts a banger VM
// through Nomad; `nomad alloc exec` runs in it; the service advertises the
// VM's address; a restarted agent re-attaches to the same VM; `nomad job
// stop` leaves nothing of it.
func TestNomadDriver(t *testing.T) {
	nomad := nomadBinary(t)
	d := sharedDaemon(t)

	pluginDir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "banger-nomad-driver"), "./cmd/banger-nomad-driver")
	build.Dir, _ = filepath.Abs("../../nomad-driver")
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build banger-nomad-driver: %v\n%s", err, out)
	}
	t.Cleanup(func() { // runs after the agent's own cleanup stopped it
		for _, vm := range nomadVMs(t, d) {
			d.run("vm", "delete", "--force", vm.Name)
		}
	})
	a := newNomadAgent(t, nomad, pluginDir, d.socket)

	waitFor(t, a, "banger driver healthy on the Nomad node", 3*time.Minute, func() (bool, string) {
		var nodes []struct {
			Status  string
			Drivers map[string]struct{ Detected, Healthy bool }
		}
		if err := a.get("/v1/nodes", &nodes); err != nil || len(nodes) == 0 {
			return false, fmt.Sprint("nodes: ", err)
		}
		drv := nodes[0].Drivers["banger"]
		return nodes[0].Status == "ready" && drv.Healthy, fmt.Sprintf("node %s, driver %+v", nodes[0].Status, drv)
	})

	job, _ := filepath.Abs("../../examples/nomad/sandbox.nomad.hcl")
	if out, err := a.cli(t, "job", "run", "-detach", "-var", "image=bb", "-var", "memory=256", "-var", "nat=false", job); err != nil {
		t.Fatalf("nomad job run: %v\n%s", err, out)
	}
	submitted := time.Now()
	var alloc nomadAlloc
	waitFor(t, a, "allocation running", 10*time.Minute, func() (bool, string) {
		allocs := a.allocs(t)
		if len(allocs) == 0 {
			return false, "no allocation"
		}
		alloc = allocs[0]
		if alloc.ClientStatus == "failed" {
			t.Fatalf("allocation failed: %+v\nagent log tail:\n%s", alloc, a.logTail())
		}
		return alloc.ClientStatus == "running", fmt.Sprintf("%+v", alloc)
	})

	t.Logf("allocation %s running %s after job run", alloc.ID[:8], time.Since(submitted).Round(time.Second))
	vms := nomadVMs(t, d)
	if len(vms) != 1 || vms[0].State != "running" || !strings.HasPrefix(vms[0].Name, "nomad-"+alloc.ID[:8]) {
		t.Fatalf("banger VMs = %+v, want one running VM for alloc %s", vms, alloc.ID)
	}
	vm := showVM(t, d, vms[0].Name)
	if vm.MemoryMiB != 256 {
		t.Errorf("VM memory = %d MiB, want the task's 256", vm.MemoryMiB)
	}

	allocExec := func(args ...string) string {
		t.Helper()
		out, err := a.cli(t, append([]string{"alloc", "exec", "-i=false", "-t=false", "-task", "vm", alloc.ID}, args...)...)
		if err != nil {
			t.Fatalf("nomad alloc exec %v: %v\n%s", args, err, out)
		}
		return out
	}
	if out := allocExec("/bin/sh", "-c", "echo hello from $(hostname)"); !strings.Contains(out, "hello from "+vm.Name) {
		t.Fatalf("alloc exec output %q, want the VM's hostname %s", out, vm.Name)
	}
	if out := a.execTTY(t, alloc.ID, "tty"); !strings.Contains(out, "/dev/pts/") {
		t.Errorf("alloc exec -t: tty said %q, want a PTY", out)
	}

	var regs []struct{ Address string }
	waitFor(t, a, "service registered with the VM's address", time.Minute, func() (bool, string) {
		err := a.get("/v1/service/sandbox-ssh", &regs)
		return err == nil && len(regs) == 1, fmt.Sprint(regs, err)
	})
	if regs[0].Address != vm.GuestIP {
		t.Errorf("service address %s, want the VM's %s", regs[0].Address, vm.GuestIP)
	}

	// Restart the agent: the driver must re-attach to the same VM.
	a.stop()
	a.start(t)
	waitFor(t, a, "allocation running after the agent restart", 5*time.Minute, func() (bool, string) {
		allocs := a.allocs(t)
		if len(allocs) != 1 {
			return false, fmt.Sprintf("%d allocations", len(allocs))
		}
		ts := allocs[0].TaskStates["vm"]
		return allocs[0].ClientStatus == "running" && ts.State == "running", fmt.Sprintf("%+v", allocs[0])
	})
	waitFor(t, a, "driver recovered the task", 2*time.Minute, func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(a.dir, "agent.log"))
		return bytes.Contains(b, []byte("recovered task")), "no \"recovered task\" in the agent log"
	})
	t.Logf("driver re-attached to VM %s after the agent restart", vm.Name)
	if after := nomadVMs(t, d); len(after) != 1 || after[0].ID != vm.ID || after[0].State != "running" {
		t.Fatalf("after the agent restart VMs = %+v, want the same VM %s running", after, vm.ID)
	}
	if allocs := a.allocs(t); len(allocs) != 1 || allocs[0].TaskStates["vm"].Restarts != 0 {
		t.Fatalf("after the agent restart allocations = %+v, want the same one, not restarted", allocs)
	}
	if out := allocExec("/bin/sh", "-c", "echo still $(hostname)"); !strings.Contains(out, "still "+vm.Name) {
		t.Fatalf("alloc exec after the restart: %q", out)
	}

	if out, err := a.cli(t, "job", "stop", "-detach", "sandbox"); err != nil {
		t.Fatalf("nomad job stop: %v\n%s", err, out)
	}
	waitFor(t, a, "VM deleted after job stop", 3*time.Minute, func() (bool, string) {
		left := nomadVMs(t, d)
		return len(left) == 0, fmt.Sprintf("%+v", left)
	})
	if _, err := os.Stat(vm.Dir); !os.IsNotExist(err) {
		t.Errorf("VM folder %s left behind (%v)", vm.Dir, err)
	}
	if vm.TapDevice != "" {
		if err := exec.Command("ip", "link", "show", vm.TapDevice).Run(); err == nil {
			t.Errorf("tap %s left behind", vm.TapDevice)
		}
	}
}
