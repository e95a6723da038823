package vmm

import "context"

// Snapshotter is a backend that can save a running VM's memory and device
// state and start new VMs from it (vm snapshot, vm fork). Callers
// type-assert a Backend to it; a backend without it cannot snapshot.
type Snapshotter interface {
	// Snapshot stops the guest of runDir (it stays stopped: the caller
	// copies the disks, then resumes or quits it) and writes its device
	// state (SnapshotState) and RAM (SnapshotRAM) into dir, both 0600.
	Snapshot(ctx context.Context, runDir, dir string) error
	// Restore starts a VMM for spec (same device layout, memory and vCPUs
	// as the snapshot's VM; its own disks, tap and MAC) from the snapshot
	// in dir. The guest's RAM maps the snapshot's copy-on-write. The guest
	// is left stopped (Suspender.Resume continues it).
	Restore(ctx context.Context, spec Spec, dir string) (Process, error)
	// Fingerprint describes what a snapshot taken of spec's VM needs to be
	// restored (VMM build, accelerator, CPU model, device layout, kernel,
	// initrd, memory, vCPUs): Restore of a snapshot whose recorded
	// fingerprint differs must be refused.
	Fingerprint(spec Spec) (map[string]string, error)
}

// Files of a snapshot folder written by Snapshotter.Snapshot.
const (
	SnapshotState = "state.bin" // device state (migration stream)
	SnapshotRAM   = "ram"       // guest RAM
)

// ControlSocket is the unix socket, in a VM's run folder, of its control
// port: the guest agent serves the agent protocol there without network
// (a clone is re-identified over it).
const ControlSocket = "ctl.sock"
