package firecracker

import (
	"context"
	"fmt"
	"strings"

	"banger/internal/vmm"
)

// maxDisks is how many drives get a vdX name (vda..vdz).
const maxDisks = 26

// request is one API call of a VM's configuration.
type request struct {
	Path string
	Body any // sent with PUT
}

// configRequests are the API calls that configure and boot spec, in order:
// machine, boot source, drives (attached as vda, vdb, ... in this order), the
// network interface and finally InstanceStart.
func configRequests(spec vmm.Spec) []request {
	reqs := []request{
		{"/machine-config", MachineConfig{VCPUCount: spec.VCPUs, MemSizeMiB: spec.MemoryMiB}},
		{"/boot-source", BootSource{
			KernelImagePath: spec.Kernel,
			InitrdPath:      spec.Initrd,
			BootArgs:        bootArgs(spec.Cmdline, spec.Disks),
		}},
	}
	for i, d := range spec.Disks {
		id := fmt.Sprintf("d%d", i)
		reqs = append(reqs, request{"/drives/" + id, Drive{
			DriveID:    id,
			PathOnHost: d.Path,
			IsReadOnly: d.ReadOnly,
			// Writeback honours the guest's flushes; Firecracker's default
			// (Unsafe) drops them.
			CacheType: "Writeback",
		}})
	}
	if n := spec.Net; n != nil {
		reqs = append(reqs, request{"/network-interfaces/eth0", NetworkInterface{
			IfaceID: "eth0", HostDevName: n.Tap, GuestMAC: n.MAC,
		}})
	}
	return append(reqs, request{"/actions", InstanceAction{ActionType: ActionInstanceStart}})
}

// configure sends configRequests(spec) to a freshly started Firecracker.
func configure(ctx context.Context, c *Client, spec vmm.Spec) error {
	for _, r := range configRequests(spec) {
		if err := c.Put(ctx, r.Path, r.Body); err != nil {
			return err
		}
	}
	return nil
}

// bootArgs is cmdline plus what a Firecracker guest needs: banger.disks=
// naming each disk's role (its serial) and device, as Firecracker cannot set
// disk serials, and pci=off (Firecracker has no PCI bus by default) unless
// cmdline already says something about PCI.
func bootArgs(cmdline string, disks []vmm.Disk) string {
	args := strings.Fields(cmdline)
	var roles []string
	for i, d := range disks {
		if d.Serial != "" {
			roles = append(roles, d.Serial+":"+diskName(i))
		}
	}
	if len(roles) > 0 {
		args = append(args, "banger.disks="+strings.Join(roles, ","))
	}
	if !hasKernelParam(cmdline, "pci") {
		args = append(args, "pci=off")
	}
	return strings.Join(args, " ")
}

// diskName is the guest's name of the i-th drive: vda, vdb, ...; i < maxDisks.
func diskName(i int) string { return "vd" + string(rune('a'+i)) }

// hasKernelParam reports whether cmdline sets name (as name or name=value).
func hasKernelParam(cmdline, name string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == name || strings.HasPrefix(f, name+"=") {
			return true
		}
	}
	return false
}
