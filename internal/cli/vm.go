package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/model"

	"github.com/spf13/cobra"
)

func newVMCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Short: "Create, run and reach microVMs"}
	cmd.AddCommand(newVMCreateCmd(a), newVMCreateStatusCmd(a), newVMListCmd(a), newVMShowCmd(a),
		newVMStateCmd(a, "start", "Boot a stopped VM and wait until it is ready"),
		newVMStateCmd(a, "stop", "Power a VM off (bounded wait, then kill)"),
		newVMStateCmd(a, "restart", "Stop and start a VM"),
		newVMKillCmd(a), newVMSetCmd(a), newVMDeleteCmd(a), newVMStatsCmd(a), newVMLogsCmd(a),
		newVMSSHCmd(a), newVMExecCmd(a), newVMSSHConfigCmd(a), newVMHealthCmd(a), newVMPingCmd(a),
		newVMPortsCmd(a), newWorkspaceCmd(a), newVMForwardCmd(a), newVMEgressCmd(a))
	addSnapshotCmds(a, cmd)
	return cmd
}

// Create stages, in order, for "N of M" display.
var createStages = []string{"validate", "disks", "network", "boot", "agent", "ready"}

func newVMCreateCmd(a *app) *cobra.Command {
	var p api.VMCreateParams
	var f struct {
		vcpus, memory int
		detach        bool
		timeout       time.Duration
		sshKeys       bool
		egress        egressFlags
		secrets       secretFlags
	}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a VM and wait until its guest agent answers",
		Args:  exactArgs(0, "no arguments (use --name)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("vcpus") {
				p.VCPUCount = &f.vcpus
			}
			if cmd.Flags().Changed("memory") {
				p.MemoryMiB = &f.memory
			}
			eg, err := f.egress.policy(cmd.Flags(), &p.NATEnabled)
			if err != nil {
				return err
			}
			p.Egress = eg
			if p.Secrets, err = f.secrets.refs(); err != nil {
				return err
			}
			if f.sshKeys {
				keys, err := userPublicKeys()
				if err != nil {
					return err
				}
				p.AuthorizedKeys = keys
			}
			c := a.client()
			op, err := c.VMCreate(cmd.Context(), p)
			if err != nil {
				return err
			}
			if f.detach {
				return a.output(op, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, op.ID)
					return err
				})
			}
			op, err = a.waitCreate(cmd.Context(), op, f.timeout)
			if err != nil {
				return err
			}
			return a.output(op.VM, func(w io.Writer) error { return vmText(w, *op.VM) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&p.Name, "name", "", "VM name, a DNS label (default: generated)")
	fl.StringVar(&p.ImageName, "image", "", "image name or id")
	fl.IntVar(&f.vcpus, "vcpus", 2, "virtual CPUs")
	fl.IntVar(&f.memory, "memory", 1024, "memory in MiB")
	fl.StringVar(&p.SystemOverlaySize, "system-overlay-size", "", "size of the copy-on-write system overlay (default 8G)")
	fl.StringVar(&p.WorkDiskSize, "work-disk-size", "", "size of the persistent work disk at /root (default 8G)")
	fl.BoolVar(&p.NATEnabled, "nat", false, "let the VM reach beyond the host (NAT)")
	addEgressFlags(fl, &f.egress)
	addSecretFlags(fl, &f.secrets, false)
	fl.BoolVar(&p.NoStart, "no-start", false, "create the disks but do not boot")
	fl.BoolVar(&f.detach, "detach", false, "print the operation id and return at once")
	fl.BoolVar(&f.sshKeys, "ssh-keys", false, "also authorize your ~/.ssh/*.pub keys for root (plain ssh root@IP works)")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Minute, "how long to wait for ready")
	fl.StringVar(&p.Forward, "forward", "", "auto: forward the guest's new TCP listeners to the same host loopback port; off (default)")
	fl.BoolVar(&p.ForwardRemap, "remap", false, "with --forward auto: a busy host port gets a free one instead of a conflict")
	cmd.RegisterFlagCompletionFunc("image", a.completeImages)
	return cmd
}

// waitCreate follows an operation, printing each stage with elapsed time.
func (a *app) waitCreate(ctx context.Context, op api.VMCreateOperation, timeout time.Duration) (api.VMCreateOperation, error) {
	c := a.client()
	start := time.Now()
	deadline := start.Add(timeout)
	shown := 0 // stages printed so far
	for {
		// Print every stage up to the current one: short stages can pass
		// between two polls.
		for cur := stageIndex(op.Stage); shown < cur; shown++ {
			detail := "done"
			if shown+1 == cur {
				detail = op.Detail
			}
			fmt.Fprintf(a.stderr, "[%d/%d] %-8s %s (%.1fs)\n", shown+1, len(createStages), createStages[shown], safe(detail), time.Since(start).Seconds())
		}
		if op.Done {
			if !op.Success || op.VM == nil {
				return op, fmt.Errorf("create %s failed: %s", op.VMName, op.Error)
			}
			return op, nil
		}
		if time.Now().After(deadline) {
			return op, fmt.Errorf("vm %s not ready after %s (still at stage %s); follow it with 'banger vm create-status %s'", op.VMName, timeout, op.Stage, op.ID)
		}
		// The daemon answers when the stage changes (or after a few
		// seconds); the deadline bounds the wait.
		asked := time.Now()
		wctx, cancel := context.WithDeadline(ctx, deadline)
		next, err := c.VMCreateStatusWait(wctx, op.ID, op.Stage)
		cancel()
		switch {
		case ctx.Err() != nil:
			return op, fmt.Errorf("stopped waiting; the create goes on: 'banger vm create-status %s'", op.ID)
		case err != nil && time.Now().After(deadline):
			continue // reported by the deadline check above
		case err != nil:
			return op, err
		}
		if !next.Done && next.Stage == op.Stage && time.Since(asked) < 20*time.Millisecond {
			// A daemon that does not wait: poll.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		op = next
	}
}

func stageIndex(stage string) int {
	for i, s := range createStages {
		if s == stage {
			return i + 1
		}
	}
	return 0
}

func newVMCreateStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "create-status OPERATION",
		Short: "Show a create operation",
		Args:  exactArgs(1, "an operation id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			op, err := a.client().VMCreateStatus(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.output(op, func(w io.Writer) error {
				state := "in progress"
				if op.Done && op.Success {
					state = "succeeded"
				} else if op.Done {
					state = "failed"
				}
				return keyValues(w, [][2]string{{"operation", op.ID}, {"vm", op.VMName}, {"state", state},
					{"stage", op.Stage}, {"detail", safe(op.Detail)}, {"error", safeText(op.Error)}})
			})
		},
	}
}

func newVMListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List VMs with their address, backend and forwarded ports",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			vms, err := a.client().VMList(cmd.Context())
			if err != nil {
				return err
			}
			return a.output(vms, func(w io.Writer) error {
				rows := [][]string{}
				for _, v := range vms {
					rows = append(rows, []string{v.Name, stateText(v), dash(v.GuestIP), v.ImageName,
						fmt.Sprint(v.VCPUCount), fmt.Sprintf("%dM", v.MemoryMiB), dash(v.Backend), natWord(v.NATEnabled), portsColumn(v.Forwards)})
				}
				return table(w, []string{"NAME", "STATE", "IP", "IMAGE", "CPUS", "MEMORY", "BACKEND", "NAT", "PORTS"}, rows)
			})
		},
	}
}

func newVMShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "show NAME",
		Short:             "Show one VM",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			vm, err := a.client().VMShow(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.output(vm, func(w io.Writer) error { return vmText(w, vm) })
		},
	}
}

func newVMStateCmd(a *app, verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:               verb + " NAME",
		Short:             short,
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			fn := map[string]func(context.Context, string) (model.VMRecord, error){
				"start": c.VMStart, "stop": c.VMStop, "restart": c.VMRestart,
				"suspend": c.VMSuspend, "resume": c.VMResume}[verb]
			start := time.Now()
			vm, err := fn(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "%s: %s (%.1fs)\n", vm.Name, vm.State, time.Since(start).Seconds())
			return a.output(vm, func(io.Writer) error { return nil })
		},
	}
}

func newVMKillCmd(a *app) *cobra.Command {
	var p api.VMKillParams
	cmd := &cobra.Command{
		Use:               "kill NAME",
		Short:             "Send a signal to a VM's VMM (default KILL)",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p.IDOrName = args[0]
			vm, err := a.client().VMKill(cmd.Context(), p)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "%s: %s\n", vm.Name, vm.State)
			return a.output(vm, func(io.Writer) error { return nil })
		},
	}
	cmd.Flags().StringVarP(&p.Signal, "signal", "s", "KILL", "signal name")
	return cmd
}

func newVMSetCmd(a *app) *cobra.Command {
	var p api.VMSetParams
	var f struct {
		vcpus, memory int
		nat, remap    bool
		egress        egressFlags
		secrets       secretFlags
	}
	cmd := &cobra.Command{
		Use:               "set NAME",
		Short:             "Change vCPUs, memory (next start), work disk size (grows only), NAT, egress or secrets (live)",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p.IDOrName = args[0]
			if cmd.Flags().Changed("vcpus") {
				p.VCPUCount = &f.vcpus
			}
			if cmd.Flags().Changed("memory") {
				p.MemoryMiB = &f.memory
			}
			if cmd.Flags().Changed("nat") {
				p.NATEnabled = &f.nat
			}
			if cmd.Flags().Changed("remap") {
				p.ForwardRemap = &f.remap
			}
			eg, err := f.egress.policy(cmd.Flags(), &f.nat)
			if err != nil {
				return err
			}
			p.Egress = eg
			if p.Secrets, err = f.secrets.refs(); err != nil {
				return err
			}
			p.NoSecrets = f.secrets.unbind
			if p.VCPUCount == nil && p.MemoryMiB == nil && p.WorkDiskSize == "" && p.NATEnabled == nil && p.Forward == "" && p.ForwardRemap == nil && p.Egress == nil &&
				len(p.Secrets) == 0 && len(p.NoSecrets) == 0 {
				return usagef("nothing to set: use --vcpus, --memory, --work-disk-size, --nat, --egress, --secret, --no-secret, --forward or --remap")
			}
			vm, err := a.client().VMSet(cmd.Context(), p)
			if err != nil {
				return err
			}
			if len(vm.PendingRestart) > 0 {
				fmt.Fprintf(a.stderr, "%s is running: %s apply at next start\n", vm.Name, strings.Join(vm.PendingRestart, ", "))
			}
			return a.output(vm, func(w io.Writer) error { return vmText(w, vm) })
		},
	}
	cmd.Flags().IntVar(&f.vcpus, "vcpus", 0, "virtual CPUs (next start)")
	cmd.Flags().IntVar(&f.memory, "memory", 0, "memory in MiB (next start)")
	cmd.Flags().StringVar(&p.WorkDiskSize, "work-disk-size", "", "grow the work disk (the guest grows its filesystem at next boot)")
	cmd.Flags().BoolVar(&f.nat, "nat", false, "NAT on or off (--nat=true|false), applies live")
	cmd.Flags().StringVar(&p.Forward, "forward", "", "auto|off: forward the guest's TCP listeners automatically, applies live")
	cmd.Flags().BoolVar(&f.remap, "remap", false, "auto forwards: a busy host port gets a free one (--remap=true|false)")
	addEgressFlags(cmd.Flags(), &f.egress)
	addSecretFlags(cmd.Flags(), &f.secrets, true)
	return cmd
}

func newVMDeleteCmd(a *app) *cobra.Command {
	var f struct{ force, all bool }
	cmd := &cobra.Command{
		Use:               "delete NAME...",
		Short:             "Delete VMs with their disks, network pieces and records",
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			if f.all {
				vms, err := c.VMList(cmd.Context())
				if err != nil {
					return err
				}
				for _, v := range vms {
					args = append(args, v.Name)
				}
			}
			if len(args) == 0 {
				return usagef("name at least one VM (or --all)")
			}
			var failed []string
			for _, name := range args {
				if err := c.VMDelete(cmd.Context(), api.VMDeleteParams{IDOrName: name, Force: f.force}); err != nil {
					fmt.Fprintf(a.stderr, "banger: %s\n", safe(strings.SplitN(err.Error(), "\n", 2)[0]))
					failed = append(failed, name)
					continue
				}
				fmt.Fprintf(a.stderr, "deleted %s\n", name)
			}
			if len(failed) > 0 {
				return exitError{ExitFailed}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&f.force, "force", "f", false, "stop running VMs first")
	cmd.Flags().BoolVar(&f.all, "all", false, "delete every VM")
	return cmd
}

func newVMStatsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "stats NAME",
		Short:             "Show state, uptime, VMM CPU and memory, and disk usage",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := a.client().VMStats(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) error {
				s := res.Stats
				return keyValues(w, [][2]string{{"name", res.VM.Name}, {"state", string(s.State)},
					{"uptime", (time.Duration(s.UptimeSeconds) * time.Second).String()},
					{"vmm cpu", fmt.Sprintf("%.2fs", s.VMMCPUSeconds)}, {"vmm rss", humanBytes(s.VMMRSSBytes)},
					{"overlay", fmt.Sprintf("%s used of %s (%s on host)", humanBytes(s.OverlayUsedBytes), humanBytes(s.OverlaySizeBytes), humanBytes(s.OverlayAllocBytes))},
					{"work disk", fmt.Sprintf("%s used of %s (%s on host)", humanBytes(s.WorkDiskUsedBytes), humanBytes(s.WorkDiskSizeBytes), humanBytes(s.WorkDiskAllocBytes))}})
			})
		},
	}
}

// completeVMs completes live VM names.
func (a *app) completeVMs(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	vms, err := a.client().VMList(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, v := range vms {
		names = append(names, v.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeImages completes image names.
func (a *app) completeImages(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	imgs, err := a.client().ImageList(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, i := range imgs {
		names = append(names, i.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
