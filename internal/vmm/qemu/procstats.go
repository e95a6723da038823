package qemu

import "banger/internal/vmm/vmmproc"

// ProcStats is vmmproc.ProcStats, kept only while internal/vm still calls it
// here (the process statistics are the same for every backend).
//
// Deprecated: use vmmproc.ProcStats.
var ProcStats = vmmproc.ProcStats
