package cli

import (
	"fmt"

	"banger/internal/buildinfo"
	"banger/internal/mcp"
	"banger/internal/paths"

	"github.com/spf13/cobra"
)

func newMCPCmd(a *app) *cobra.Command {
	var f struct{ http, tokenFile string }
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve banger's tools to coding agents over the Model Context Protocol (stdio, or HTTP with a token)",
		Long: `Serve banger's tools (VMs, commands, files, workspaces) to an MCP client.
By default one client speaks on stdin/stdout. With --http the server listens
on a loopback address for streamable HTTP and requires the bearer token in
--token-file (mode 0600). The server acts as you: the daemon's rules for you apply.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var token string
			if f.http != "" {
				t, err := mcp.ReadToken(f.tokenFile)
				if err != nil {
					return usagef("%v", err)
				}
				token = t
			} else if f.tokenFile != "" {
				return usagef("--token-file goes with --http")
			}
			keyDir, err := paths.UserConfigDir()
			if err != nil {
				return err
			}
			c := a.client()
			guests := mcp.NewSSHGuests(c, keyDir)
			defer guests.Close()
			ms := mcp.NewServer(mcp.Options{Daemon: c, Guests: guests, Version: buildinfo.Version})
			if f.http == "" {
				return mcp.ServeStdio(cmd.Context(), ms)
			}
			l, err := mcp.ListenLoopback(f.http)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "banger mcp: serving http://%s/mcp\n", l.Addr())
			return mcp.ServeHTTP(cmd.Context(), l, mcp.HTTPHandler(ms, token))
		},
	}
	cmd.Flags().StringVar(&f.http, "http", "", "serve streamable HTTP on this loopback HOST:PORT instead of stdio")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token HTTP clients must send (required with --http)")
	return cmd
}
