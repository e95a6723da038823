// Package vmmproc holds the process handling the VMM backends (vmm/qemu,
// vmm/firecracker) share. A VMM runs detached from the daemon, usually not
// as its child, and is found again through its run directory: a pidfile
// names the pid, and the pid's command line must name the run directory's
// pidfile or socket (see Match) before banger trusts it, since pids are
// reused. Waiting and signalling go through pidfds so that a pid reused
// meanwhile is never hit.
package vmmproc
