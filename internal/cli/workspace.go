package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/termsafe"
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
		out         string
		apply       string
		symlinksOut bool
	}
	cmd := &cobra.Command{
		Use:               "export NAME",
		Short:             "Print the guest's workspace changes as a git patch (binary-safe)",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p.IDOrName = args[0]
			ctx := cmd.Context()
			if f.apply != "" || a.json {
				var buf bytes.Buffer
				res, err := a.client().WorkspaceExportTo(ctx, p, &buf)
				if err != nil {
					return err
				}
				res.Patch = buf.Bytes()
				if a.json {
					return printJSON(a.stdout, res)
				}
				repo, err := absPath(f.apply)
				if err != nil {
					return err
				}
				if !res.HasChanges {
					fmt.Fprintln(a.stderr, "no changes to apply")
					return nil
				}
				summary, err := workspace.ApplyWith(ctx, repo, res.Patch, workspace.ApplyOptions{AllowSymlinksOut: f.symlinksOut})
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, termsafe.Text(summary))
				return nil
			}
			if f.out != "" && f.out != "-" {
				return exportToFile(a, ctx, p, f.out)
			}
			// The patch is the guest's text: on a terminal its control
			// characters are shown escaped; piped, the bytes pass as they are.
			out := io.Writer(a.stdout)
			var safe *termsafe.Writer
			if a.isTTY(a.stdout) {
				safe = termsafe.NewWriter(a.stdout)
				out = safe
			}
			res, err := a.client().WorkspaceExportTo(ctx, p, out)
			if safe != nil {
				if ferr := safe.Flush(); err == nil {
					err = ferr
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "%d changed files since %s\n", len(res.ChangedFiles), short(res.BaseCommit, 12))
			return nil
		},
	}
	cmd.Flags().StringVar(&p.GuestPath, "guest-path", "", "workspace path in the guest (default: the prepared one)")
	cmd.Flags().StringVar(&p.BaseCommit, "base-commit", "", "diff against this commit instead of the prepare-time state")
	cmd.Flags().StringVarP(&f.out, "output", "o", "", "write the patch to FILE")
	cmd.Flags().StringVar(&f.apply, "apply", "", "apply the patch to this host repository (after checking every path)")
	cmd.Flags().BoolVar(&f.symlinksOut, "allow-symlinks-out", false, "with --apply: accept symlinks that point outside the repository")
	return cmd
}

// exportToFile streams the patch into a new file beside out and renames it
// into place once complete: a failed export leaves no partial patch.
func exportToFile(a *app, ctx context.Context, p api.WorkspaceExportParams, out string) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	res, err := a.client().WorkspaceExportTo(ctx, p, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "%d changed files; patch written to %s\n", len(res.ChangedFiles), out)
	return nil
}
