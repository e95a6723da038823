package model

import "time"

// WorkspacePrepareResult describes a workspace copied into a VM.
type WorkspacePrepareResult struct {
	VMName           string    `json:"vm_name"`
	SourcePath       string    `json:"source_path"`
	GuestPath        string    `json:"guest_path"`
	BaseCommit       string    `json:"base_commit"`
	Branch           string    `json:"branch,omitempty"`
	Mode             string    `json:"mode"`
	IncludeUntracked bool      `json:"include_untracked"`
	FileCount        int       `json:"file_count"`
	Bytes            int64     `json:"bytes"`
	PreparedAt       time.Time `json:"prepared_at"`
}
