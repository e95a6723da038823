package driver

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
)

func testDriver(t *testing.T, socket string) *Driver {
	t.Helper()
	d := New(hclog.NewNullLogger())
	d.pollInterval = 10 * time.Millisecond
	var cfg []byte
	if err := base.MsgPackEncode(&cfg, PluginConfig{Socket: socket, FingerprintPeriod: "1s"}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetConfig(&base.Config{PluginConfig: cfg}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Shutdown)
	return d
}

func testTask(t *testing.T, tc TaskConfig) *drivers.TaskConfig {
	t.Helper()
	cfg := &drivers.TaskConfig{
		ID:       "6f1c2d3e-aaaa-bbbb-cccc-000000000000/sandbox/1a2b3c4d",
		AllocID:  "6f1c2d3e-aaaa-bbbb-cccc-000000000000",
		Name:     "sandbox",
		AllocDir: t.TempDir(),
		Resources: &drivers.Resources{NomadResources: &structs.AllocatedTaskResources{
			Memory: structs.AllocatedMemoryResources{MemoryMB: 768}}},
	}
	if err := cfg.EncodeConcreteDriverConfig(&tc); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func waitExit(t *testing.T, ch <-chan *drivers.ExitResult) *drivers.ExitResult {
	t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("task did not exit")
		return nil
	}
}

// TestStartRecoverStopDestroy goes through a task's life against a fake
// daemon: the VM is created as configured, the handle brings a new driver
// (a restarted Nomad client) back to the same VM, stop powers it off and
// destroy deletes it.
func TestStartRecoverStopDestroy(t *testing.T) {
	fake := newFakeDaemon(t)
	d := testDriver(t, fake.socket)
	cfg := testTask(t, TaskConfig{Image: "debian-bookworm", VCPUs: 2, NAT: true, WorkDiskSize: "2G"})

	handle, network, err := d.StartTask(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(fake.snap().creates) != 1 {
		t.Fatalf("creates = %d, want 1", len(fake.snap().creates))
	}
	p := fake.snap().creates[0]
	if p.Name != "nomad-6f1c2d3e-sandbox" || p.ImageName != "debian-bookworm" || !p.NATEnabled ||
		p.VCPUCount == nil || *p.VCPUCount != 2 || p.MemoryMiB == nil || *p.MemoryMiB != 768 || p.WorkDiskSize != "2G" {
		t.Fatalf("create params = %+v", p)
	}
	if len(p.AuthorizedKeys) != 1 || !strings.HasPrefix(p.AuthorizedKeys[0], "ssh-ed25519 ") {
		t.Fatalf("authorized keys = %q, want the task's key", p.AuthorizedKeys)
	}
	if network == nil || network.IP != "172.30.0.7" || !network.AutoAdvertise {
		t.Fatalf("network = %+v, want the VM's address, advertised", network)
	}

	// A restarted Nomad client: a new driver gets the stored handle.
	d2 := testDriver(t, fake.socket)
	stored := handle.Copy()
	stored.Config = cfg
	if err := d2.RecoverTask(stored); err != nil {
		t.Fatal(err)
	}
	st, err := d2.InspectTask(cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != drivers.TaskStateRunning || st.DriverAttributes["vm_id"] != "vm1" || st.NetworkOverride.IP != "172.30.0.7" {
		t.Fatalf("recovered status = %+v", st)
	}
	if len(fake.snap().creates) != 1 {
		t.Fatal("recover created a VM")
	}

	wait, err := d2.WaitTask(context.Background(), cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.DestroyTask(cfg.ID, false); err == nil {
		t.Fatal("destroy of a running task without force succeeded")
	}
	if err := d2.StopTask(cfg.ID, 5*time.Second, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	if res := waitExit(t, wait); res.ExitCode != 0 || res.Err != nil {
		t.Fatalf("exit = %+v, want 0", res)
	}
	if fake.snap().stops != 1 {
		t.Fatalf("stops = %d, want 1", fake.snap().stops)
	}
	if err := d2.DestroyTask(cfg.ID, false); err != nil {
		t.Fatal(err)
	}
	if len(fake.snap().vms) != 0 {
		t.Fatalf("vms left after destroy: %v", fake.snap().vms)
	}
	if _, err := d2.InspectTask(cfg.ID); !errors.Is(err, drivers.ErrTaskNotFound) {
		t.Fatalf("inspect after destroy: %v", err)
	}
}

// TestVMGoneEndsTask: a VM deleted behind Nomad's back ends the task with
// an error, and recovering a handle whose VM is gone fails.
func TestVMGoneEndsTask(t *testing.T) {
	fake := newFakeDaemon(t)
	d := testDriver(t, fake.socket)
	cfg := testTask(t, TaskConfig{Image: "debian-bookworm"})
	handle, _, err := d.StartTask(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wait, _ := d.WaitTask(context.Background(), cfg.ID)
	fake.mu.Lock()
	delete(fake.vms, "vm1")
	fake.mu.Unlock()
	if res := waitExit(t, wait); res.ExitCode == 0 || res.Err == nil {
		t.Fatalf("exit = %+v, want a failure", res)
	}
	d2 := testDriver(t, fake.socket)
	stored := handle.Copy()
	stored.Config = cfg
	if err := d2.RecoverTask(stored); err == nil || !strings.Contains(err.Error(), "no longer exists") {
		t.Fatalf("recover of a deleted VM: %v", err)
	}
}

// TestStartFailureLeavesNoTask: a create the daemon fails is the task's
// error and no task is kept.
func TestStartFailureLeavesNoTask(t *testing.T) {
	fake := newFakeDaemon(t)
	fake.failWith = `image "nope" not found`
	d := testDriver(t, fake.socket)
	cfg := testTask(t, TaskConfig{Image: "nope"})
	if _, _, err := d.StartTask(cfg); err == nil || !strings.Contains(err.Error(), `image "nope" not found`) {
		t.Fatalf("start: %v", err)
	}
	if _, err := d.InspectTask(cfg.ID); !errors.Is(err, drivers.ErrTaskNotFound) {
		t.Fatalf("task kept after a failed start: %v", err)
	}
}

// TestWorkspaceCopiedFromTaskDir: the workspace source is resolved in the
// task folder and prepared in the new VM.
func TestWorkspaceCopiedFromTaskDir(t *testing.T) {
	fake := newFakeDaemon(t)
	d := testDriver(t, fake.socket)
	cfg := testTask(t, TaskConfig{Image: "debian-bookworm", Workspace: &WorkspaceBlock{Source: "local/repo", GuestPath: "/root/repo"}})
	if _, _, err := d.StartTask(cfg); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(cfg.AllocDir, "sandbox", "local", "repo")
	if len(fake.snap().workspace) != 1 || fake.snap().workspace[0].SourcePath != want || fake.snap().workspace[0].GuestPath != "/root/repo" ||
		fake.snap().workspace[0].IDOrName != "nomad-6f1c2d3e-sandbox" {
		t.Fatalf("workspace requests = %+v, want source %s", fake.snap().workspace, want)
	}
}

// TestSignalAndStats: signals go to the VMM through vm/kill; stats carry
// the VMM's RSS.
func TestSignalAndStats(t *testing.T) {
	fake := newFakeDaemon(t)
	d := testDriver(t, fake.socket)
	cfg := testTask(t, TaskConfig{Image: "debian-bookworm"})
	if _, _, err := d.StartTask(cfg); err != nil {
		t.Fatal(err)
	}
	if err := d.SignalTask(cfg.ID, "SIGSTOP"); err != nil {
		t.Fatal(err)
	}
	if len(fake.snap().kills) != 1 || fake.snap().kills[0].Signal != "SIGSTOP" || fake.snap().kills[0].IDOrName != "vm1" {
		t.Fatalf("kills = %+v", fake.snap().kills)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.TaskStats(ctx, cfg.ID, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	usage := <-ch
	if usage.ResourceUsage.MemoryStats.RSS != 64<<20 {
		t.Fatalf("rss = %d", usage.ResourceUsage.MemoryStats.RSS)
	}
}

// TestFingerprint: a daemon that answers makes the driver healthy with its
// accelerator, images and kernels as attributes; no daemon, undetected.
func TestFingerprint(t *testing.T) {
	fake := newFakeDaemon(t)
	d := testDriver(t, fake.socket)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.Fingerprint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fp := <-ch
	if fp.Health != drivers.HealthStateHealthy {
		t.Fatalf("health = %s (%s)", fp.Health, fp.HealthDescription)
	}
	for _, k := range []string{"driver.banger.accelerator", "driver.banger.version", "driver.banger.image.debian-bookworm", "driver.banger.kernel.debian-6.1"} {
		if fp.Attributes[k] == nil {
			t.Errorf("attribute %s missing: %v", k, fp.Attributes)
		}
	}
	if v, _ := fp.Attributes["driver.banger.accelerator"].GetString(); v != "tcg" {
		t.Errorf("accelerator = %q", v)
	}

	gone := testDriver(t, filepath.Join(t.TempDir(), "none.sock"))
	ch2, _ := gone.Fingerprint(ctx)
	if fp := <-ch2; fp.Health != drivers.HealthStateUndetected || !strings.Contains(fp.HealthDescription, "unreachable") {
		t.Fatalf("no daemon: health = %s (%s)", fp.Health, fp.HealthDescription)
	}
}
