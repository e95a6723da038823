package model

import "time"

// Image is a root filesystem banger can boot.
type Image struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Source says how the image arrived: "pull", "import", "build" or "register".
	Source    string `json:"source"`
	SourceRef string `json:"source_ref,omitempty"`
	// Digest is the OCI manifest digest for pulled/imported images.
	Digest       string `json:"digest,omitempty"`
	RootfsPath   string `json:"rootfs_path"`
	WorkSeedPath string `json:"work_seed_path,omitempty"`
	KernelPath   string `json:"kernel_path,omitempty"`
	InitrdPath   string `json:"initrd_path,omitempty"`
	ModulesDir   string `json:"modules_dir,omitempty"`
	// KernelRef names a kernel in banger's kernel store that this image prefers.
	KernelRef string `json:"kernel_ref,omitempty"`
	Docker    bool   `json:"docker,omitempty"`
	// Init is "image" when the image asks to boot its own /sbin/init (banger's
	// agent keeps serving beside it); empty means banger's init is PID 1.
	Init string `json:"init,omitempty"`
	// SizeBytes is the size of the ext4 root filesystem file.
	SizeBytes int64 `json:"size_bytes"`
	// Managed is true when banger owns RootfsPath (pulled, imported, built) and
	// deletes it with the image; registered files are never touched.
	Managed   bool      `json:"managed"`
	OwnerUID  int       `json:"owner_uid"`
	OwnerGID  int       `json:"owner_gid"`
	CreatedAt time.Time `json:"created_at"`
	// Entrypoint/Cmd/Env/WorkingDir from the OCI config, kept for reference.
	Env        []string `json:"env,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
}
