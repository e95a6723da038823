package api

import (
	"banger/internal/model"
	"time"
)

type Empty struct{}
type PingResult struct {
	Status  string `json:"status"`
	PID     int    `json:"pid"`
	Version string `json:"version,omitempty"`
	Commit  string `json:"commit,omitempty"`
	BuiltAt string `json:"built_at,omitempty"`
	// Accel (added) is the accelerator VMs run under, "kvm" or "tcg", and
	// AccelReason why it was chosen (e.g. the result of the kvm probe).
	Accel       string `json:"accel,omitempty"`
	AccelReason string `json:"accel_reason,omitempty"`
}
type ShutdownResult struct {
	Status string `json:"status"`
}
type VMCreateParams struct {
	Name              string `json:"name,omitempty"`
	ImageName         string `json:"image_name,omitempty"`
	VCPUCount         *int   `json:"vcpu_count,omitempty"`
	MemoryMiB         *int   `json:"memory_mib,omitempty"`
	SystemOverlaySize string `json:"system_overlay_size,omitempty"`
	WorkDiskSize      string `json:"work_disk_size,omitempty"`
	NATEnabled        bool   `json:"nat_enabled,omitempty"`
	NoStart           bool   `json:"no_start,omitempty"`
	// AuthorizedKeys (added to the seed): extra public keys (authorized_keys
	// lines) allowed to log in as root, e.g. the user's ~/.ssh/*.pub.
	AuthorizedKeys []string `json:"authorized_keys,omitempty"`
	// Forward is the forward mode, "auto" or "off" (default; see forward.go);
	// ForwardRemap picks free host ports for busy ones in auto mode.
	Forward      string `json:"forward,omitempty"`
	ForwardRemap bool   `json:"forward_remap,omitempty"`
	// Egress (added) is the outbound policy; nil: as NATEnabled says.
	Egress *model.EgressPolicy `json:"egress,omitempty"`
	// Secrets are bound to the VM (it needs bridge networking and egress
	// none or allow).
	Secrets []SecretRef `json:"secrets,omitempty"`
}
type VMCreateStatusParams struct {
	ID string `json:"id"`
	// WaitStage, when set, holds the answer until the operation has left
	// this stage or ended (at most a few seconds): a follower learns each
	// change when it happens instead of polling.
	WaitStage string `json:"wait_stage,omitempty"`
}
type VMCreateOperation struct {
	ID        string          `json:"id"`
	VMID      string          `json:"vm_id,omitempty"`
	VMName    string          `json:"vm_name,omitempty"`
	Stage     string          `json:"stage,omitempty"`
	Detail    string          `json:"detail,omitempty"`
	StartedAt time.Time       `json:"started_at,omitempty"`
	UpdatedAt time.Time       `json:"updated_at,omitempty"`
	Done      bool            `json:"done"`
	Success   bool            `json:"success"`
	Error     string          `json:"error,omitempty"`
	VM        *model.VMRecord `json:"vm,omitempty"`
	// OwnerUID (added to the seed) is the uid of the caller that asked for the VM.
	OwnerUID int `json:"owner_uid"`
}
type VMCreateBeginResult struct {
	Operation VMCreateOperation `json:"operation"`
}
type VMCreateStatusResult struct {
	Operation VMCreateOperation `json:"operation"`
}
type VMRefParams struct {
	IDOrName string `json:"id_or_name"`
}
type VMKillParams struct {
	IDOrName string `json:"id_or_name"`
	Signal   string `json:"signal,omitempty"`
}
type VMSetParams struct {
	IDOrName     string `json:"id_or_name"`
	VCPUCount    *int   `json:"vcpu_count,omitempty"`
	MemoryMiB    *int   `json:"memory_mib,omitempty"`
	WorkDiskSize string `json:"work_disk_size,omitempty"`
	NATEnabled   *bool  `json:"nat_enabled,omitempty"`
	// Forward sets the forward mode ("auto" or "off"), live.
	Forward      string `json:"forward,omitempty"`
	ForwardRemap *bool  `json:"forward_remap,omitempty"`
	// Egress (added) replaces the outbound policy, live.
	Egress *model.EgressPolicy `json:"egress,omitempty"`
	// Secrets are bound (or rebound with another Env), NoSecrets unbound
	// (by name); a stopped VM only.
	Secrets   []SecretRef `json:"secrets,omitempty"`
	NoSecrets []string    `json:"no_secrets,omitempty"`
}
type VMListResult struct {
	VMs []model.VMRecord `json:"vms"`
}
type VMShowResult struct {
	VM model.VMRecord `json:"vm"`
}
type VMStatsResult struct {
	VM    model.VMRecord `json:"vm"`
	Stats model.VMStats  `json:"stats"`
}
type VMLogsResult struct {
	LogPath string `json:"log_path"`
}
type VMSSHResult struct {
	Name    string `json:"name"`
	GuestIP string `json:"guest_ip"`
}
type VMHealthResult struct {
	Name    string `json:"name"`
	Healthy bool   `json:"healthy"`
	// Checks (added to the seed) says which check failed.
	Checks []VMHealthCheck `json:"checks,omitempty"`
}
type VMPingResult struct {
	Name  string `json:"name"`
	Alive bool   `json:"alive"`
}
type VMPort struct {
	Proto       string `json:"proto"`
	BindAddress string `json:"bind_address,omitempty"`
	Port        int    `json:"port"`
	PID         int    `json:"pid,omitempty"`
	Process     string `json:"process,omitempty"`
	Command     string `json:"command,omitempty"`
	Endpoint    string `json:"endpoint,omitempty"`
	// Forwarded is the host loopback address forwarding to this port
	// ("127.0.0.1:3000"); ForwardConflict says why it is not forwarded.
	Forwarded       string `json:"forwarded,omitempty"`
	ForwardConflict string `json:"forward_conflict,omitempty"`
}
type VMPortsResult struct {
	Name    string   `json:"name"`
	DNSName string   `json:"dns_name,omitempty"`
	Ports   []VMPort `json:"ports"`
}
type WorkspaceExportParams struct {
	IDOrName   string `json:"id_or_name"`
	GuestPath  string `json:"guest_path,omitempty"`
	BaseCommit string `json:"base_commit,omitempty"`
}
type WorkspaceExportResult struct {
	GuestPath    string   `json:"guest_path"`
	BaseCommit   string   `json:"base_commit"`
	Patch        []byte   `json:"patch"`
	ChangedFiles []string `json:"changed_files"`
	HasChanges   bool     `json:"has_changes"`
}
type VMWorkspacePrepareParams struct {
	IDOrName         string `json:"id_or_name"`
	SourcePath       string `json:"source_path"`
	GuestPath        string `json:"guest_path,omitempty"`
	Branch           string `json:"branch,omitempty"`
	From             string `json:"from,omitempty"`
	Mode             string `json:"mode,omitempty"`
	IncludeUntracked bool   `json:"include_untracked,omitempty"`
}
type VMWorkspacePrepareResult struct {
	Workspace model.WorkspacePrepareResult `json:"workspace"`
}
type ImageRegisterParams struct {
	Name         string `json:"name,omitempty"`
	RootfsPath   string `json:"rootfs_path,omitempty"`
	WorkSeedPath string `json:"work_seed_path,omitempty"`
	KernelPath   string `json:"kernel_path,omitempty"`
	InitrdPath   string `json:"initrd_path,omitempty"`
	ModulesDir   string `json:"modules_dir,omitempty"`
	KernelRef    string `json:"kernel_ref,omitempty"`
	Docker       bool   `json:"docker,omitempty"`
	// Init (added to the seed): "image" boots the image's own /sbin/init.
	Init string `json:"init,omitempty"`
}
type ImagePullParams struct {
	Ref        string `json:"ref"`
	Name       string `json:"name,omitempty"`
	KernelPath string `json:"kernel_path,omitempty"`
	InitrdPath string `json:"initrd_path,omitempty"`
	ModulesDir string `json:"modules_dir,omitempty"`
	KernelRef  string `json:"kernel_ref,omitempty"`
	SizeBytes  int64  `json:"size_bytes,omitempty"`
}
type ImageRefParams struct {
	IDOrName string `json:"id_or_name"`
}
type ImageListResult struct {
	Images []model.Image `json:"images"`
}
type ImageShowResult struct {
	Image model.Image `json:"image"`
}
type KernelEntry struct {
	Name          string `json:"name"`
	Distro        string `json:"distro,omitempty"`
	Arch          string `json:"arch,omitempty"`
	KernelVersion string `json:"kernel_version,omitempty"`
	SHA256        string `json:"sha256,omitempty"`
	Source        string `json:"source,omitempty"`
	ImportedAt    string `json:"imported_at,omitempty"`
	KernelPath    string `json:"kernel_path,omitempty"`
	InitrdPath    string `json:"initrd_path,omitempty"`
	ModulesDir    string `json:"modules_dir,omitempty"`
	// OwnerUID (added to the seed) is the uid of the caller that pulled or
	// imported the kernel; 0 (root) for kernels recorded before owners.
	OwnerUID int `json:"owner_uid"`
}
type KernelListResult struct {
	Entries []KernelEntry `json:"entries"`
}
type KernelRefParams struct {
	Name string `json:"name"`
}
type KernelShowResult struct {
	Entry KernelEntry `json:"entry"`
}
type KernelImportParams struct {
	Name    string `json:"name"`
	FromDir string `json:"from_dir"`
	Distro  string `json:"distro,omitempty"`
	Arch    string `json:"arch,omitempty"`
}
type KernelPullParams struct {
	Name  string `json:"name"`
	Force bool   `json:"force,omitempty"`
}
type KernelCatalogEntry struct {
	Name          string `json:"name"`
	Distro        string `json:"distro,omitempty"`
	Arch          string `json:"arch,omitempty"`
	KernelVersion string `json:"kernel_version,omitempty"`
	SizeBytes     int64  `json:"size_bytes,omitempty"`
	Description   string `json:"description,omitempty"`
	Pulled        bool   `json:"pulled"`
}
type KernelCatalogResult struct {
	Entries []KernelCatalogEntry `json:"entries"`
}
