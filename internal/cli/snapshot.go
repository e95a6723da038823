package cli

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/model"
)

// addSnapshotCmds adds suspend, resume, snapshot and fork to the vm group.
func addSnapshotCmds(a *app, vm *cobra.Command) {
	vm.AddCommand(
		newVMStateCmd(a, "suspend", "Stop a VM's vCPUs, keeping its memory and processes (frees the host CPU)"),
		newVMStateCmd(a, "resume", "Continue a suspended VM (its clock is set and its RNG reseeded)"),
		newVMSnapshotCmd(a), newVMForkCmd(a),
	)
}

func newVMSnapshotCmd(a *app) *cobra.Command {
	var p api.VMSnapshotParams
	cmd := &cobra.Command{
		Use:               "snapshot NAME",
		Short:             "Save a running VM's memory, devices and disks (left suspended unless --keep-running)",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p.IDOrName = args[0]
			start := time.Now()
			sn, err := a.client().VMSnapshot(cmd.Context(), p)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "snapshot %s of %s (%s, %.1fs)\n", sn.Name, sn.VMName, humanBytes(sn.SizeBytes), time.Since(start).Seconds())
			return a.output(sn, func(io.Writer) error { return nil })
		},
	}
	cmd.Flags().StringVar(&p.Name, "name", "", "snapshot name (default NAME-DATE-TIME)")
	cmd.Flags().BoolVar(&p.KeepRunning, "keep-running", false, "let the VM run on after the snapshot")
	return cmd
}

func newVMForkCmd(a *app) *cobra.Command {
	var p api.VMForkParams
	cmd := &cobra.Command{
		Use:               "fork [NAME] [--from-snapshot S]",
		Short:             "Clone a running VM (or a snapshot) into VMs of their own, from the same memory and disks",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				p.IDOrName = args[0]
			}
			if (p.IDOrName == "") == (p.FromSnapshot == "") {
				return usageError{fmt.Errorf("give a running VM's NAME or --from-snapshot S (not both)")}
			}
			start := time.Now()
			res, err := a.client().VMFork(cmd.Context(), p)
			if err != nil {
				return err
			}
			for _, v := range res.VMs {
				fmt.Fprintf(a.stderr, "%s: %s %s\n", v.Name, v.State, v.GuestIP)
			}
			fmt.Fprintf(a.stderr, "%d clone(s) of snapshot %s ready (%.1fs)\n", len(res.VMs), res.Snapshot.Name, time.Since(start).Seconds())
			return a.output(res, func(io.Writer) error { return nil })
		},
	}
	cmd.Flags().StringVar(&p.FromSnapshot, "from-snapshot", "", "fork this snapshot instead of a running VM")
	cmd.Flags().IntVar(&p.Count, "count", 1, "number of clones")
	cmd.Flags().StringVar(&p.NamePrefix, "name", "", "clone name prefix: PREFIX-1, PREFIX-2, ... (default: the VM's name)")
	return cmd
}

func newSnapshotCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "List, show and delete VM snapshots"}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List your snapshots",
			Args:  exactArgs(0, "no arguments"),
			RunE: func(cmd *cobra.Command, _ []string) error {
				sns, err := a.client().SnapshotList(cmd.Context())
				if err != nil {
					return err
				}
				sort.Slice(sns, func(i, j int) bool { return sns[i].Name < sns[j].Name })
				return a.output(sns, func(w io.Writer) error {
					rows := [][]string{}
					for _, s := range sns {
						rows = append(rows, []string{s.Name, s.VMName, s.ImageName, fmt.Sprintf("%dM", s.MemoryMiB),
							humanBytes(s.SizeBytes), s.CreatedAt.Local().Format(time.DateTime)})
					}
					return table(w, []string{"NAME", "VM", "IMAGE", "MEMORY", "SIZE", "CREATED"}, rows)
				})
			},
		},
		&cobra.Command{
			Use:   "show NAME",
			Short: "Show one snapshot",
			Args:  exactArgs(1, "a snapshot name"),
			RunE: func(cmd *cobra.Command, args []string) error {
				sn, err := a.client().SnapshotShow(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return a.output(sn, func(w io.Writer) error { return snapshotText(w, sn) })
			},
		},
		&cobra.Command{
			Use:   "delete NAME",
			Short: "Delete a snapshot (refused while a running clone maps it)",
			Args:  exactArgs(1, "a snapshot name"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.client().SnapshotDelete(cmd.Context(), args[0])
			},
		},
	)
	return cmd
}

func snapshotText(w io.Writer, s model.Snapshot) error {
	kv := [][2]string{{"name", s.Name}, {"id", s.ID}, {"vm", s.VMName}, {"image", s.ImageName}, {"kernel", s.KernelName},
		{"backend", s.Backend}, {"vcpus", fmt.Sprint(s.VCPUCount)}, {"memory", fmt.Sprintf("%dM", s.MemoryMiB)},
		{"size", humanBytes(s.SizeBytes)}, {"created", s.CreatedAt.Local().Format(time.DateTime)}, {"dir", s.Dir}}
	keys := make([]string, 0, len(s.Fingerprint))
	for k := range s.Fingerprint {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv = append(kv, [2]string{"restore needs " + k, s.Fingerprint[k]})
	}
	return keyValues(w, kv)
}
