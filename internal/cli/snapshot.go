package cli

import "github.com/spf13/cobra"

// addSnapshotCmds adds suspend, resume, snapshot and fork to the vm group.
func addSnapshotCmds(a *app, vm *cobra.Command) {
	vm.AddCommand(
		newVMStateCmd(a, "suspend", "Stop a VM's vCPUs, keeping its memory and processes (frees the host CPU)"),
		newVMStateCmd(a, "resume", "Continue a suspended VM (its clock is set and its RNG reseeded)"),
	)
}
