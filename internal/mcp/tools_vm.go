package mcp

import (
	"context"
	"fmt"
	"time"

	"banger/internal/api"
	"banger/internal/model"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// VMRef names a VM.
type VMRef struct {
	VM string `json:"vm" jsonschema:"the VM's name or id"`
}

// VMResult is one VM.
type VMResult struct {
	VM model.VMRecord `json:"vm"`
}

// VMListResult is the caller's VMs.
type VMListResult struct {
	VMs []model.VMRecord `json:"vms"`
}

// VMCreateInput are vm_create's arguments.
type VMCreateInput struct {
	Name              string           `json:"name,omitempty" jsonschema:"VM name, a DNS label (default: generated)"`
	Image             string           `json:"image,omitempty" jsonschema:"image name or id (default: the daemon's default image)"`
	VCPUs             int              `json:"vcpus,omitempty" jsonschema:"virtual CPUs (default 2)"`
	MemoryMiB         int              `json:"memory_mib,omitempty" jsonschema:"memory in MiB (default 1024)"`
	SystemOverlaySize string           `json:"system_overlay_size,omitempty" jsonschema:"size of the copy-on-write system overlay, e.g. 8G"`
	WorkDiskSize      string           `json:"work_disk_size,omitempty" jsonschema:"size of the persistent work disk at /root, e.g. 8G"`
	NAT               bool             `json:"nat,omitempty" jsonschema:"let the VM reach anywhere beyond the host (internet access; same as egress open)"`
	Egress            string           `json:"egress,omitempty" jsonschema:"outbound policy: none (nothing beyond the host), open (anywhere, same as nat) or allow (only what allow lists)"`
	Allow             []string         `json:"allow,omitempty" jsonschema:"with egress allow: domains, *.domain wildcards, IPv4 addresses or CIDRs, each with an optional :PORT"`
	Deny              []string         `json:"deny,omitempty" jsonschema:"IPv4 addresses or CIDRs never reached, whatever else allows"`
	Secrets           []SecretRefInput `json:"secrets,omitempty" jsonschema:"secrets to bind (see secret_list): the guest gets a placeholder, never the value; needs egress none (the default with secrets: only the secrets' hosts are reached) or allow"`
	TimeoutSeconds    int              `json:"timeout_seconds,omitempty" jsonschema:"how long to wait for the VM to be ready (default 600)"`
}

// VMDeleteInput are vm_delete's arguments.
type VMDeleteInput struct {
	VM    string `json:"vm" jsonschema:"the VM's name or id"`
	Force bool   `json:"force,omitempty" jsonschema:"stop the VM first if it is running"`
}

// DeleteResult says what was deleted.
type DeleteResult struct {
	Deleted string `json:"deleted"`
}

// Create stages, in order, for progress (as the CLI shows them).
var createStages = []string{"validate", "disks", "network", "boot", "agent", "ready"}

func (s *server) addVMTools(ms *mcp.Server) {
	addTool(ms, "vm_create", "Create VM", "Create a VM and wait until it is ready (reports progress per stage). You are root in it; delete it with vm_delete when done. "+
		"secrets binds secrets the human added with 'banger secret add' (see secret_list): the guest holds placeholders, banger's proxy puts the values into requests to their hosts; no tool takes a secret's value.", additive, s.vmCreate)
	addTool(ms, "vm_list", "List VMs", "List your VMs with state, IP, image and the host ports forwarded to them (forwards).", readOnly,
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (VMListResult, error) {
			vms, err := s.Daemon.VMList(ctx)
			if vms == nil {
				vms = []model.VMRecord{}
			}
			return VMListResult{VMs: vms}, err
		})
	addTool(ms, "vm_show", "Show VM", "Show one VM.", readOnly,
		func(ctx context.Context, _ *mcp.CallToolRequest, in VMRef) (VMResult, error) {
			vm, err := s.Daemon.VMShow(ctx, in.VM)
			return VMResult{vm}, err
		})
	addTool(ms, "vm_start", "Start VM", "Boot a stopped VM and wait until it is ready.", additive,
		func(ctx context.Context, _ *mcp.CallToolRequest, in VMRef) (VMResult, error) {
			vm, err := s.Daemon.VMStart(ctx, in.VM)
			return VMResult{vm}, err
		})
	addTool(ms, "vm_stop", "Stop VM", "Power a VM off (its disks are kept; processes in it end).", destructive,
		func(ctx context.Context, _ *mcp.CallToolRequest, in VMRef) (VMResult, error) {
			s.Guests.Forget(in.VM)
			vm, err := s.Daemon.VMStop(ctx, in.VM)
			return VMResult{vm}, err
		})
	addTool(ms, "vm_delete", "Delete VM", "Delete a VM with its disks; everything in it is lost.", destructive,
		func(ctx context.Context, _ *mcp.CallToolRequest, in VMDeleteInput) (DeleteResult, error) {
			s.Guests.Forget(in.VM)
			err := s.Daemon.VMDelete(ctx, api.VMDeleteParams{IDOrName: in.VM, Force: in.Force})
			return DeleteResult{Deleted: in.VM}, err
		})
	addTool(ms, "vm_ports", "List ports", "List the guest's listening TCP and UDP sockets and how to reach them from the host.", readOnly,
		func(ctx context.Context, _ *mcp.CallToolRequest, in VMRef) (api.VMPortsResult, error) {
			res, err := s.Daemon.VMPorts(ctx, in.VM)
			if res.Ports == nil {
				res.Ports = []api.VMPort{}
			}
			return res, err
		})
}

func (s *server) vmCreate(ctx context.Context, req *mcp.CallToolRequest, in VMCreateInput) (VMResult, error) {
	p := api.VMCreateParams{Name: in.Name, ImageName: in.Image, SystemOverlaySize: in.SystemOverlaySize,
		WorkDiskSize: in.WorkDiskSize, NATEnabled: in.NAT}
	if err := createSecrets(in, &p); err != nil {
		return VMResult{}, err
	}
	if in.VCPUs != 0 {
		p.VCPUCount = &in.VCPUs
	}
	if in.MemoryMiB != 0 {
		p.MemoryMiB = &in.MemoryMiB
	}
	timeout := 10 * time.Minute
	if in.TimeoutSeconds > 0 {
		timeout = time.Duration(in.TimeoutSeconds) * time.Second
	}
	op, err := s.Daemon.VMCreate(ctx, p)
	if err != nil {
		return VMResult{}, err
	}
	token := req.Params.GetProgressToken()
	deadline := time.Now().Add(timeout)
	shown := 0
	for {
		if cur := stageIndex(op.Stage); token != nil && cur > shown {
			shown = cur
			msg := op.Stage
			if op.Detail != "" {
				msg += ": " + op.Detail
			}
			req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token,
				Progress: float64(cur), Total: float64(len(createStages)), Message: msg})
		}
		if op.Done {
			if !op.Success || op.VM == nil {
				return VMResult{}, fmt.Errorf("create %s failed: %s", op.VMName, op.Error)
			}
			return VMResult{*op.VM}, nil
		}
		if time.Now().After(deadline) {
			return VMResult{}, fmt.Errorf("vm %s not ready after %s (still at stage %s); follow it with 'banger vm create-status %s'", op.VMName, timeout, op.Stage, op.ID)
		}
		select {
		case <-ctx.Done():
			return VMResult{}, fmt.Errorf("stopped waiting; the create goes on: 'banger vm create-status %s'", op.ID)
		case <-time.After(150 * time.Millisecond):
		}
		if op, err = s.Daemon.VMCreateStatus(ctx, op.ID); err != nil {
			return VMResult{}, err
		}
	}
}

func stageIndex(stage string) int {
	for i, s := range createStages {
		if s == stage {
			return i + 1
		}
	}
	return 0
}
