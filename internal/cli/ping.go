package cli

import (
	"fmt"
	"io"

	"banger/internal/buildinfo"

	"github.com/spf13/cobra"
)

func newPingCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "ping",
		Short: "Check that the daemon answers",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := a.client().Ping(cmd.Context())
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s: bangerd %s (pid %d) on %s\n", res.Status, res.Version, res.PID, a.socket)
				return err
			})
		},
	}
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the client and daemon versions",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			type side struct {
				Version string `json:"version"`
				Commit  string `json:"commit,omitempty"`
				BuiltAt string `json:"built_at,omitempty"`
				Error   string `json:"error,omitempty"`
			}
			out := struct {
				Client side `json:"client"`
				Daemon side `json:"daemon"`
			}{Client: side{buildinfo.Version, buildinfo.Commit, buildinfo.BuiltAt, ""}}
			if res, err := a.client().Ping(cmd.Context()); err != nil {
				out.Daemon.Error = err.Error()
			} else {
				out.Daemon = side{res.Version, res.Commit, res.BuiltAt, ""}
			}
			return a.output(out, func(w io.Writer) error {
				fmt.Fprintf(w, "client: %s %s %s\n", out.Client.Version, out.Client.Commit, out.Client.BuiltAt)
				if out.Daemon.Error != "" {
					_, err := fmt.Fprintf(w, "daemon: unreachable (%s)\n", out.Daemon.Error)
					return err
				}
				_, err := fmt.Fprintf(w, "daemon: %s %s %s\n", out.Daemon.Version, out.Daemon.Commit, out.Daemon.BuiltAt)
				return err
			})
		},
	}
}
