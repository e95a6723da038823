package driver

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/drivers"
)

// TestTaskConfigParse: every field of a job's config block reaches the
// create request.
func TestTaskConfigParse(t *testing.T) {
	var tc TaskConfig
	hclutils.NewConfigParser(taskSpec).ParseHCL(t, `
config {
  image               = "debian-bookworm"
  vcpus               = 2
  memory_mib          = 1024
  system_overlay_size = "4G"
  work_disk_size      = "8G"
  nat                 = true
  authorized_keys     = ["ssh-ed25519 AAAA me"]
  workspace {
    source     = "local/repo"
    guest_path = "/root/repo"
    branch     = "main"
  }
}`, &tc)
	p, err := tc.createParams("vm", 300, []string{"ssh-ed25519 BBBB task"})
	if err != nil {
		t.Fatal(err)
	}
	if p.ImageName != "debian-bookworm" || *p.VCPUCount != 2 || *p.MemoryMiB != 1024 || p.SystemOverlaySize != "4G" ||
		p.WorkDiskSize != "8G" || !p.NATEnabled || len(p.AuthorizedKeys) != 2 {
		t.Fatalf("create params = %+v", p)
	}
	if tc.Workspace == nil || tc.Workspace.Source != "local/repo" || tc.Workspace.GuestPath != "/root/repo" || tc.Workspace.Branch != "main" {
		t.Fatalf("workspace = %+v", tc.Workspace)
	}
}

// TestTaskConfigDefaults: without memory_mib the VM gets the task's Nomad
// memory; vcpus is left to the daemon.
func TestTaskConfigDefaults(t *testing.T) {
	var tc TaskConfig
	hclutils.NewConfigParser(taskSpec).ParseHCL(t, `config { image = "img" }`, &tc)
	p, err := tc.createParams("vm", 512, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.VCPUCount != nil || p.MemoryMiB == nil || *p.MemoryMiB != 512 || p.NATEnabled {
		t.Fatalf("create params = %+v", p)
	}
}

// TestTaskConfigRefused: a config without an image, with an unknown field,
// or with bad numbers is refused with a clear error.
func TestTaskConfigRefused(t *testing.T) {
	spec, diags := hclspecutils.Convert(taskSpec)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, c := range []struct{ hcl, want string }{
		{`config { vcpus = 2 }`, `"image" is required`},
		{`config { image = "x"
kernel = "k" }`, `No argument or block type is named "kernel"`},
	} {
		_, diag, errs := hclutils.ParseHclInterface(hclutils.HclConfigToInterface(t, c.hcl), spec, nil)
		msg := diag.Error()
		for _, e := range errs {
			msg += e.Error()
		}
		if !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q, want %q", c.hcl, msg, c.want)
		}
	}
	for _, tc := range []TaskConfig{{Image: ""}, {Image: "x", VCPUs: 65}, {Image: "x", MemoryMiB: -1}} {
		if _, err := tc.createParams("vm", 0, nil); err == nil {
			t.Errorf("%+v accepted", tc)
		}
	}
}

// TestWorkspaceSourceStaysInTaskDir: sources that leave the task folder are
// refused.
func TestWorkspaceSourceStaysInTaskDir(t *testing.T) {
	for _, src := range []string{"/etc", "..", "../other", "local/../../x", ""} {
		w := &WorkspaceBlock{Source: src}
		if _, err := w.workspaceParams("vm", "/alloc/task"); err == nil {
			t.Errorf("source %q accepted", src)
		}
	}
	p, err := (&WorkspaceBlock{Source: "local/./repo"}).workspaceParams("vm", "/alloc/task")
	if err != nil || p.SourcePath != "/alloc/task/local/repo" {
		t.Fatalf("local/./repo: %+v %v", p, err)
	}
}

// TestVMName: names follow banger's rules whatever the task is called.
func TestVMName(t *testing.T) {
	for _, c := range []struct{ alloc, task, want string }{
		{"6f1c2d3e-aaaa", "sandbox", "nomad-6f1c2d3e-sandbox"},
		{"6F1C2D3E-aaaa", "My_Task.1", "nomad-6f1c2d3e-my-task-1"},
		{"6f1c2d3e", "___", "nomad-6f1c2d3e"},
		{"6f1c2d3e", strings.Repeat("x", 80), "nomad-6f1c2d3e-" + strings.Repeat("x", 48)},
	} {
		got := vmName(&drivers.TaskConfig{AllocID: c.alloc, Name: c.task})
		if got != c.want {
			t.Errorf("vmName(%q, %q) = %q, want %q", c.alloc, c.task, got, c.want)
		}
	}
}
