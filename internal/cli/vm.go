package cli

import "github.com/spf13/cobra"

func newVMCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Short: "Create, run and reach microVMs"}
	return cmd
}
