package cli

import (
	"fmt"
	"io"

	"banger/internal/api"

	"github.com/spf13/cobra"
)

func newKernelCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "kernel", Short: "Manage guest kernels"}
	cmd.AddCommand(newKernelCatalogCmd(a), newKernelPullCmd(a), newKernelImportCmd(a),
		newKernelListCmd(a), newKernelShowCmd(a), newKernelDeleteCmd(a))
	return cmd
}

func newKernelCatalogCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "catalog",
		Short: "List the kernels banger can fetch",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			entries, err := a.client().KernelCatalog(cmd.Context())
			if err != nil {
				return err
			}
			return a.output(entries, func(w io.Writer) error {
				rows := [][]string{}
				for _, e := range entries {
					pulled := "no"
					if e.Pulled {
						pulled = "yes"
					}
					size := "-"
					if e.SizeBytes > 0 {
						size = humanBytes(e.SizeBytes)
					}
					rows = append(rows, []string{e.Name, e.Distro, e.Arch, dash(e.KernelVersion), size, pulled, e.Description})
				}
				return table(w, []string{"NAME", "DISTRO", "ARCH", "VERSION", "SIZE", "PULLED", "DESCRIPTION"}, rows)
			})
		},
	}
}

func newKernelPullCmd(a *app) *cobra.Command {
	var p api.KernelPullParams
	cmd := &cobra.Command{
		Use:   "pull NAME",
		Short: "Fetch a catalog kernel (idempotent; --force fetches again)",
		Args:  exactArgs(1, "a catalog name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			pr := a.newProgress()
			e, err := a.client().KernelPull(cmd.Context(), p, pr.event)
			pr.done()
			if err != nil {
				return err
			}
			return a.output(e, func(w io.Writer) error { return kernelText(w, e) })
		},
	}
	cmd.Flags().BoolVar(&p.Force, "force", false, "fetch again even if already pulled")
	return cmd
}

func newKernelImportCmd(a *app) *cobra.Command {
	var p api.KernelImportParams
	cmd := &cobra.Command{
		Use:   "import NAME --from-dir DIR",
		Short: "Copy a kernel (vmlinux or vmlinuz, optional initrd and lib/modules) into the store",
		Args:  exactArgs(1, "a kernel name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			dir, err := absPath(p.FromDir)
			if err != nil {
				return err
			}
			p.FromDir = dir
			e, err := a.client().KernelImport(cmd.Context(), p)
			if err != nil {
				return err
			}
			return a.output(e, func(w io.Writer) error { return kernelText(w, e) })
		},
	}
	cmd.Flags().StringVar(&p.FromDir, "from-dir", "", "folder holding the kernel")
	cmd.Flags().StringVar(&p.Distro, "distro", "", "distribution the kernel comes from")
	cmd.Flags().StringVar(&p.Arch, "arch", "", "architecture (default x86_64)")
	cmd.MarkFlagRequired("from-dir")
	return cmd
}

func newKernelListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List stored kernels",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			entries, err := a.client().KernelList(cmd.Context())
			if err != nil {
				return err
			}
			return a.output(entries, func(w io.Writer) error {
				rows := [][]string{}
				for _, e := range entries {
					rows = append(rows, []string{e.Name, dash(e.Distro), dash(e.Arch), dash(e.KernelVersion), dash(e.Source), short(e.SHA256, 12)})
				}
				return table(w, []string{"NAME", "DISTRO", "ARCH", "VERSION", "SOURCE", "SHA256"}, rows)
			})
		},
	}
}

func newKernelShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show one kernel",
		Args:  exactArgs(1, "a kernel name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.client().KernelShow(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.output(e, func(w io.Writer) error { return kernelText(w, e) })
		},
	}
}

func newKernelDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a kernel no image or VM uses",
		Args:  exactArgs(1, "a kernel name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().KernelDelete(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "deleted kernel %s\n", args[0])
			return nil
		},
	}
}

func kernelText(w io.Writer, e api.KernelEntry) error {
	return keyValues(w, [][2]string{
		{"name", e.Name}, {"distro", e.Distro}, {"arch", e.Arch}, {"version", e.KernelVersion},
		{"sha256", e.SHA256}, {"source", e.Source}, {"imported", e.ImportedAt},
		{"kernel", e.KernelPath}, {"initrd", e.InitrdPath}, {"modules", e.ModulesDir},
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return dash(s)
}
