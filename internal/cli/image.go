package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/model"
	"banger/internal/units"

	"github.com/spf13/cobra"
)

func newImageCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage root filesystem images"}
	cmd.AddCommand(newImagePullCmd(a), newImageImportCmd(a), newImageBuildCmd(a), newImageRegisterCmd(a),
		newImageListCmd(a), newImageShowCmd(a), newImageDeleteCmd(a))
	return cmd
}

func newImagePullCmd(a *app) *cobra.Command {
	var p api.ImagePullParams
	var size string
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Pull an image from an OCI registry and make it an ext4 root filesystem",
		Args:  exactArgs(1, "an image reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Ref = args[0]
			if size != "" {
				n, err := parseSize(size)
				if err != nil {
					return usagef("--size: %v", err)
				}
				p.SizeBytes = n
			}
			pr := a.newProgress()
			img, err := a.client().ImagePull(cmd.Context(), p, pr.event)
			pr.done()
			if err != nil {
				return err
			}
			return a.output(img, func(w io.Writer) error { return imageText(w, img) })
		},
	}
	cmd.Flags().StringVar(&p.Name, "name", "", "image name (default: from the reference)")
	cmd.Flags().StringVar(&size, "size", "", "ext4 size, e.g. 2G (default: content plus headroom)")
	cmd.Flags().StringVar(&p.KernelRef, "kernel-ref", "", "kernel this image boots with by default")
	return cmd
}

func newImageImportCmd(a *app) *cobra.Command {
	var p api.ImageImportParams
	cmd := &cobra.Command{
		Use:   "import FILE|DIR",
		Short: "Import a docker-save tarball, an OCI layout folder or an OCI layout tarball",
		Args:  exactArgs(1, "a file or folder"),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := absPath(args[0])
			if err != nil {
				return err
			}
			p.Path = path
			pr := a.newProgress()
			img, err := a.client().ImageImport(cmd.Context(), p, pr.event)
			pr.done()
			if err != nil {
				return err
			}
			return a.output(img, func(w io.Writer) error { return imageText(w, img) })
		},
	}
	cmd.Flags().StringVar(&p.Name, "name", "", "image name")
	return cmd
}

func newImageBuildCmd(a *app) *cobra.Command {
	var p api.ImageBuildParams
	var include, packages string
	cmd := &cobra.Command{
		Use:   "build debian",
		Short: "Build a Debian root filesystem with debootstrap from the host's Debian mirror",
		Long: "Build a Debian root filesystem with debootstrap from the host's Debian mirror.\n\n" +
			"Besides git and ca-certificates the image gets a development set: ip, ping, ps/free,\n" +
			"curl, rsync, less, python3, ssh and xz.\n" +
			"--include adds packages to it, --packages replaces it, --minimal leaves it out.",
		Args: exactArgs(1, "a distribution (debian)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Distro = args[0]
			if packages != "" && cmd.Flags().Changed("minimal") {
				return usagef("--packages and --minimal exclude each other")
			}
			if include != "" {
				p.Include = strings.Split(include, ",")
			}
			if packages != "" {
				p.Minimal = true
				p.Include = append(strings.Split(packages, ","), p.Include...)
			}
			pr := a.newProgress()
			img, err := a.client().ImageBuild(cmd.Context(), p, pr.event)
			pr.done()
			if err != nil {
				return err
			}
			return a.output(img, func(w io.Writer) error { return imageText(w, img) })
		},
	}
	cmd.Flags().StringVar(&p.Suite, "suite", "bookworm", "Debian suite")
	cmd.Flags().StringVar(&include, "include", "", "extra packages, comma-separated")
	cmd.Flags().StringVar(&packages, "packages", "", "packages instead of the development set, comma-separated")
	cmd.Flags().BoolVar(&p.Minimal, "minimal", false, "only git and ca-certificates (plus --include)")
	cmd.Flags().StringVar(&p.Name, "name", "", "image name (default debian-SUITE)")
	cmd.Flags().StringVar(&p.Size, "size", "", "ext4 size, e.g. 2G")
	return cmd
}

func newImageRegisterCmd(a *app) *cobra.Command {
	var p api.ImageRegisterParams
	cmd := &cobra.Command{
		Use:   "register --name N --rootfs PATH",
		Short: "Record an existing ext4 root filesystem (never modified by banger)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []*string{&p.RootfsPath, &p.WorkSeedPath} {
				if *f == "" {
					continue
				}
				abs, err := absPath(*f)
				if err != nil {
					return err
				}
				*f = abs
			}
			img, err := a.client().ImageRegister(cmd.Context(), p)
			if err != nil {
				return err
			}
			return a.output(img, func(w io.Writer) error { return imageText(w, img) })
		},
	}
	cmd.Flags().StringVar(&p.Name, "name", "", "image name")
	cmd.Flags().StringVar(&p.RootfsPath, "rootfs", "", "ext4 root filesystem")
	cmd.Flags().StringVar(&p.WorkSeedPath, "work-seed", "", "ext4 image that seeds each VM's work disk")
	cmd.Flags().StringVar(&p.KernelRef, "kernel-ref", "", "stored kernel to boot")
	cmd.Flags().BoolVar(&p.Docker, "docker", false, "start dockerd in the guest at boot")
	cmd.Flags().StringVar(&p.Init, "init", "", "image: boot the image's own /sbin/init (banger's agent runs beside it); default banger's init")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("rootfs")
	return cmd
}

func newImageListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List images",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			imgs, err := a.client().ImageList(cmd.Context())
			if err != nil {
				return err
			}
			return a.output(imgs, func(w io.Writer) error {
				rows := [][]string{}
				for _, i := range imgs {
					rows = append(rows, []string{i.Name, i.ID, i.Source, humanBytes(i.SizeBytes), dash(i.KernelRef), ago(i.CreatedAt), dash(i.SourceRef)})
				}
				return table(w, []string{"NAME", "ID", "SOURCE", "SIZE", "KERNEL", "CREATED", "REF"}, rows)
			})
		},
	}
}

func newImageShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show REF",
		Short: "Show one image",
		Args:  exactArgs(1, "an image name or id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := a.client().ImageShow(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.output(img, func(w io.Writer) error { return imageText(w, img) })
		},
	}
}

func newImageDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete REF",
		Short: "Delete an image no VM uses",
		Args:  exactArgs(1, "an image name or id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().ImageDelete(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "deleted image %s\n", args[0])
			return nil
		},
	}
}

func imageText(w io.Writer, i model.Image) error {
	return keyValues(w, [][2]string{
		{"name", i.Name}, {"id", i.ID}, {"source", i.Source}, {"ref", i.SourceRef}, {"digest", i.Digest},
		{"size", humanBytes(i.SizeBytes)}, {"rootfs", i.RootfsPath}, {"work seed", i.WorkSeedPath},
		{"kernel ref", i.KernelRef}, {"kernel", i.KernelPath}, {"docker", fmt.Sprint(i.Docker)}, {"init", i.Init},
		{"created", i.CreatedAt.Format(time.RFC3339)},
	})
}

func absPath(p string) (string, error) {
	if p == "" {
		return "", usagef("a path is required")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return abs, nil
}

func parseSize(s string) (int64, error) { return units.ParseSize(s) }
