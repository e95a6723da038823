// Package model holds the records banger stores and returns: VMs, images,
// workspaces. They are plain data; behaviour lives in the packages that own them.
package model

import "time"

// VMState is the lifecycle state of a VM.
type VMState string

const (
	VMCreating VMState = "creating"
	VMRunning  VMState = "running"
	VMStopped  VMState = "stopped"
	VMError    VMState = "error"
	// VMSuspended: the VMM runs with the guest's vCPUs stopped and its
	// memory kept (vm suspend); vm resume continues it.
	VMSuspended VMState = "suspended"
	// VMPaused is never stored: reads report it for a running VM whose VMM
	// stopped it on a host I/O error (PauseReason says which); vm start
	// resumes it.
	VMPaused VMState = "paused"
)

// VMRecord is one VM as the daemon knows it.
type VMRecord struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	State      VMState `json:"state"`
	ImageID    string  `json:"image_id"`
	ImageName  string  `json:"image_name"`
	KernelName string  `json:"kernel_name,omitempty"`
	// Backend is the VMM and accelerator the VM last ran on, e.g. "qemu-tcg".
	Backend string `json:"backend,omitempty"`
	// AccelReason (added) is why that accelerator: the daemon's reason when
	// the VM last started, "" when not known.
	AccelReason string `json:"accel_reason,omitempty"`
	VCPUCount   int    `json:"vcpu_count"`
	MemoryMiB   int    `json:"memory_mib"`
	// Disk sizes in bytes.
	SystemOverlayBytes int64 `json:"system_overlay_bytes"`
	WorkDiskBytes      int64 `json:"work_disk_bytes"`
	NATEnabled         bool  `json:"nat_enabled"`
	// Egress is the outbound policy (nil: as NATEnabled says; see EffectiveEgress).
	Egress *EgressPolicy `json:"egress,omitempty"`
	// Network mode: "bridge" (tap on the host bridge) or "user" (QEMU user-mode).
	Network   string `json:"network,omitempty"`
	GuestIP   string `json:"guest_ip,omitempty"`
	GatewayIP string `json:"gateway_ip,omitempty"`
	MAC       string `json:"mac,omitempty"`
	TapDevice string `json:"tap_device,omitempty"`
	DNSName   string `json:"dns_name,omitempty"`
	// SSHPort is the host loopback port forwarded to the guest's port 22 in
	// user-mode networking; 0 in bridge mode (use GuestIP:22).
	SSHPort int `json:"ssh_port,omitempty"`
	PID     int `json:"pid,omitempty"`
	// Owner of the VM: the uid/gid of the caller that created it.
	OwnerUID   int        `json:"owner_uid"`
	OwnerGID   int        `json:"owner_gid"`
	Dir        string     `json:"dir,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	StoppedAt  *time.Time `json:"stopped_at,omitempty"`
	StopReason string     `json:"stop_reason,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	// PauseReason, with State "paused", says why the VMM stopped the guest,
	// e.g. "host disk full".
	PauseReason string `json:"pause_reason,omitempty"`
	// BootRestarts counts the VMM restarts of the last boot whose guest
	// stalled before banger's init.
	BootRestarts int `json:"boot_restarts,omitempty"`
	// PendingRestart lists settings changed while running that apply at next start.
	PendingRestart []string `json:"pending_restart,omitempty"`
	// AuthorizedKeys are extra public keys (beyond the daemon's) allowed to log in as root.
	AuthorizedKeys []string `json:"authorized_keys,omitempty"`
	// SSHHostKey is the guest's public host key in authorized_keys format; pinned.
	SSHHostKey string `json:"ssh_host_key,omitempty"`
	// ForkedFrom is the snapshot a clone was forked from; its VMM maps
	// that snapshot's memory until it stops.
	ForkedFrom string `json:"forked_from,omitempty"`
	// Secrets are the secrets bound to the VM (placeholders only).
	Secrets []SecretBinding `json:"secrets,omitempty"`
	// Forwards (added) are the VM's forwards from the host, as vm list and
	// vm show report them: never stored, the daemon fills them on reads.
	Forwards []Forward `json:"forwards,omitempty"`
}

// Forward is one forward from the host to a guest port (api.VMForward on
// the wire). HostAddrs are the loopback addresses the daemon listens on.
// Auto forwards follow the guest's listeners. Conflict, when set, says why
// the forward is not listening (e.g. `host port 3000 is held by a host
// process`); such a forward carries no traffic.
type Forward struct {
	HostAddrs []string `json:"host_addrs,omitempty"`
	HostPort  int      `json:"host_port"`
	UnixPath  string   `json:"unix_path,omitempty"`
	GuestPort int      `json:"guest_port"`
	Auto      bool     `json:"auto,omitempty"`
	Conflict  string   `json:"conflict,omitempty"`
}

// VMStats is a point-in-time view of a VM's resource use.
type VMStats struct {
	State              VMState `json:"state"`
	UptimeSeconds      float64 `json:"uptime_seconds"`
	VMMCPUSeconds      float64 `json:"vmm_cpu_seconds"`
	VMMRSSBytes        int64   `json:"vmm_rss_bytes"`
	OverlayUsedBytes   int64   `json:"overlay_used_bytes"`
	OverlaySizeBytes   int64   `json:"overlay_size_bytes"`
	WorkDiskUsedBytes  int64   `json:"work_disk_used_bytes"`
	WorkDiskSizeBytes  int64   `json:"work_disk_size_bytes"`
	OverlayAllocBytes  int64   `json:"overlay_allocated_bytes"`
	WorkDiskAllocBytes int64   `json:"work_disk_allocated_bytes"`
}
