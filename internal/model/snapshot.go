package model

import "time"

// Snapshot is a saved running VM (guest memory, device state and disks)
// that clones are forked from. It holds the guest's memory: it is its
// owner's alone.
type Snapshot struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// VMID and VMName are the VM it was taken of.
	VMID       string `json:"vm_id"`
	VMName     string `json:"vm_name"`
	OwnerUID   int    `json:"owner_uid"`
	OwnerGID   int    `json:"owner_gid"`
	ImageID    string `json:"image_id"`
	ImageName  string `json:"image_name"`
	KernelName string `json:"kernel_name,omitempty"`
	Backend    string `json:"backend"`
	VCPUCount  int    `json:"vcpu_count"`
	MemoryMiB  int    `json:"memory_mib"`
	// Disk sizes in bytes, as the VM had them.
	SystemOverlayBytes int64    `json:"system_overlay_bytes"`
	WorkDiskBytes      int64    `json:"work_disk_bytes"`
	NATEnabled         bool     `json:"nat_enabled"`
	AuthorizedKeys     []string `json:"authorized_keys,omitempty"`
	// Egress is the VM's policy, Secrets its bindings (placeholders as
	// the snapshot's memory holds them; clones get new ones).
	Egress  *EgressPolicy   `json:"egress,omitempty"`
	Secrets []SecretBinding `json:"secrets,omitempty"`
	// Fingerprint is what restoring needs to find unchanged (VMM build,
	// accelerator, CPU model, device layout, kernel, initrd with the agent,
	// memory, vCPUs); a restore on any difference is refused.
	Fingerprint map[string]string `json:"fingerprint"`
	Dir         string            `json:"dir,omitempty"`
	// SizeBytes is the disk space its files take.
	SizeBytes int64     `json:"size_bytes"`
	CreatedAt time.Time `json:"created_at"`
}
