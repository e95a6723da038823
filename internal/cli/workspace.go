package cli

import (
	"fmt"
	"io"
	"os"

	"banger/internal/api"
	"banger/internal/workspace"

	"github.com/spf13/cobra"
)

func newWorkspaceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "workspace", Short: "Copy a git repository into a VM and its edits back out as a patch"}
	cmd.AddCommand(newWorkspacePrepareCmd(a), newWorkspaceExportCmd(a))
	return cmd
}

func newWorkspacePrepareCmd(a *app) *cobra.Command {
	var p api.VMWorkspacePrepareParams
	cmd := &cobra.Command{
		Use:               "prepare NAME SOURCE",
		Short:             "Copy a host git repository into the VM (the host repository is never modified)",
		Args:              exactArgs(2, "a VM name and a repository path"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := absPath(args[1])
			if err != nil {
				return err
			}
			p.IDOrName, p.SourcePath = args[0], src
			if p.Mode != "" && p.Mode != "worktree" && p.Mode != "commit" {
				return usagef("--mode must be worktree or commit")
			}
			ws, err := a.client().WorkspacePrepare(cmd.Context(), p)
			if err != nil {
				return err
			}
			return a.output(ws, func(w io.Writer) error {
				return keyValues(w, [][2]string{{"vm", ws.VMName}, {"guest path", ws.GuestPath}, {"base commit", ws.BaseCommit},
					{"branch", ws.Branch}, {"mode", ws.Mode}, {"files", fmt.Sprint(ws.FileCount)}, {"bytes", humanBytes(ws.Bytes)}})
			})
		},
	}
	cmd.Flags().StringVar(&p.GuestPath, "guest-path", "", "where in the guest (default /root/<repo-name>)")
	cmd.Flags().StringVar(&p.From, "from", "", "base commit (default HEAD)")
	cmd.Flags().StringVar(&p.Branch, "branch", "", "branch to check out in the guest")
	cmd.Flags().StringVar(&p.Mode, "mode", "worktree", "worktree (base plus uncommitted changes) or commit (exactly the base)")
	cmd.Flags().BoolVar(&p.IncludeUntracked, "include-untracked", false, "also copy untracked, not ignored files")
	return cmd
}

func newWorkspaceExportCmd(a *app) *cobra.Command {
	var p api.WorkspaceExportParams
	var f struct {
		out   string
		apply string
	}
	cmd := &cobra.Command{
		Use:               "export NAME",
		Short:             "Print the guest's workspace changes as a git patch (binary-safe)",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p.IDOrName = args[0]
			res, err := a.client().WorkspaceExport(cmd.Context(), p)
			if err != nil {
				return err
			}
			if f.apply != "" {
				repo, err := absPath(f.apply)
				if err != nil {
					return err
				}
				if !res.HasChanges {
					fmt.Fprintln(a.stderr, "no changes to apply")
					return nil
				}
				summary, err := workspace.Apply(cmd.Context(), repo, res.Patch)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, summary)
				return nil
			}
			if a.json {
				return printJSON(a.stdout, res)
			}
			if f.out != "" && f.out != "-" {
				if err := os.WriteFile(f.out, res.Patch, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "%d changed files; patch written to %s\n", len(res.ChangedFiles), f.out)
				return nil
			}
			fmt.Fprintf(a.stderr, "%d changed files since %s\n", len(res.ChangedFiles), short(res.BaseCommit, 12))
			_, err = a.stdout.Write(res.Patch)
			return err
		},
	}
	cmd.Flags().StringVar(&p.GuestPath, "guest-path", "", "workspace path in the guest (default: the prepared one)")
	cmd.Flags().StringVar(&p.BaseCommit, "base-commit", "", "diff against this commit instead of the prepare-time state")
	cmd.Flags().StringVarP(&f.out, "output", "o", "", "write the patch to FILE")
	cmd.Flags().StringVar(&f.apply, "apply", "", "apply the patch to this host repository (after checking every path)")
	return cmd
}
