package api

import "banger/internal/model"

// VMSnapshotParams: snapshot a running VM. Without KeepRunning the VM is
// left suspended (vm resume continues it).
type VMSnapshotParams struct {
	IDOrName    string `json:"id_or_name"`
	Name        string `json:"name,omitempty"`
	KeepRunning bool   `json:"keep_running,omitempty"`
}

// VMForkParams: Count clones (default 1) of the running VM IDOrName (a
// snapshot is taken first and kept) or of the snapshot FromSnapshot, named
// NamePrefix-1..N (NamePrefix defaults to the VM's or snapshot's name).
type VMForkParams struct {
	IDOrName     string `json:"id_or_name,omitempty"`
	FromSnapshot string `json:"from_snapshot,omitempty"`
	Count        int    `json:"count,omitempty"`
	NamePrefix   string `json:"name_prefix,omitempty"`
}

// VMForkResult lists the clones, ready, and the snapshot they map.
type VMForkResult struct {
	Snapshot model.Snapshot   `json:"snapshot"`
	VMs      []model.VMRecord `json:"vms"`
}

// SnapshotRefParams names a snapshot.
type SnapshotRefParams struct {
	IDOrName string `json:"id_or_name"`
}

type SnapshotShowResult struct {
	Snapshot model.Snapshot `json:"snapshot"`
}

type SnapshotListResult struct {
	Snapshots []model.Snapshot `json:"snapshots"`
}
