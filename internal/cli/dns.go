package cli

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"banger/internal/network"

	"github.com/spf13/cobra"
)

func newDNSCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Resolve VM names (NAME.vm) from the host",
	}
	cmd.AddCommand(newDNSSetupCmd(a))
	return cmd
}

// dnsSetupResult is the --json shape of `banger dns setup`.
type dnsSetupResult struct {
	Bridge   string   `json:"bridge"`
	Gateway  string   `json:"gateway"`
	Domain   string   `json:"domain"`
	Commands []string `json:"commands"`
	// Applied is true when the commands were run (systemd-resolved found).
	Applied bool `json:"applied"`
	// Manual holds what to do by hand when they were not.
	Manual []string `json:"manual,omitempty"`
}

func newDNSSetupCmd(a *app) *cobra.Command {
	var p struct {
		bridge string
		domain string
		dryRun bool
	}
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Send NAME.vm lookups of this host to banger's DNS (systemd-resolved)",
		Long: "Configures systemd-resolved to send queries for the VM domain to banger's DNS server\n" +
			"on the bridge (per-link DNS and routing domain; other names are not affected).\n" +
			"Without systemd-resolved it prints what to configure instead. Needs root or polkit\n" +
			"rights for resolvectl; lasts until the bridge is recreated (e.g. after a reboot).",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, err := network.FindBridge(p.bridge)
			if err != nil {
				return fmt.Errorf("dns setup: %w", err)
			}
			domain := strings.Trim(p.domain, ".")
			res := dnsSetupResult{Bridge: info.Name, Gateway: info.Gateway.String(), Domain: domain}
			cmds := [][]string{
				{"resolvectl", "dns", info.Name, info.Gateway.String()},
				{"resolvectl", "domain", info.Name, "~" + domain},
			}
			for _, c := range cmds {
				res.Commands = append(res.Commands, strings.Join(c, " "))
			}
			resolvectl, lookErr := exec.LookPath("resolvectl")
			_, statErr := os.Stat("/run/systemd/resolve")
			switch {
			case p.dryRun:
			case lookErr != nil || statErr != nil:
				res.Manual = manualDNSSteps(info, domain)
			default:
				for _, c := range cmds {
					out, err := exec.CommandContext(cmd.Context(), resolvectl, c[1:]...).CombinedOutput()
					if err != nil {
						return fmt.Errorf("dns setup: %s: %s: %w (run it as root: sudo banger dns setup)",
							strings.Join(c, " "), strings.TrimSpace(string(out)), err)
					}
				}
				res.Applied = true
			}
			return a.output(res, func(w io.Writer) error { return printDNSSetup(w, res, p.dryRun) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&p.bridge, "bridge", "", "banger's bridge (default: the one bangerd made)")
	fl.StringVar(&p.domain, "domain", network.DefaultDomain, "DNS domain of VM names")
	fl.BoolVar(&p.dryRun, "dry-run", false, "print the commands without running them")
	return cmd
}

// manualDNSSteps tells hosts without systemd-resolved what to configure.
func manualDNSSteps(info network.BridgeInfo, domain string) []string {
	gw := info.Gateway.String()
	return []string{
		fmt.Sprintf("dnsmasq (or NetworkManager with dns=dnsmasq): add 'server=/%s/%s' to a file in /etc/dnsmasq.d/ (or /etc/NetworkManager/dnsmasq.d/) and restart it", domain, gw),
		fmt.Sprintf("any other setup: put 'nameserver %s' first in /etc/resolv.conf (banger's DNS forwards other names to the host's resolvers)", gw),
		fmt.Sprintf("to try it: dig @%s NAME.%s", gw, domain),
	}
}

func printDNSSetup(w io.Writer, res dnsSetupResult, dryRun bool) error {
	switch {
	case dryRun:
		fmt.Fprintln(w, "would run:")
		for _, c := range res.Commands {
			fmt.Fprintf(w, "  %s\n", c)
		}
	case res.Applied:
		fmt.Fprintf(w, "NAME.%s now resolves on this host through %s on %s (systemd-resolved).\n", res.Domain, res.Gateway, res.Bridge)
		fmt.Fprintln(w, "This lasts until the bridge is recreated (e.g. after a reboot): run 'banger dns setup' again then.")
	default:
		fmt.Fprintln(w, "systemd-resolved (resolvectl) not found; configure your resolver by hand:")
		for _, m := range res.Manual {
			fmt.Fprintf(w, "  - %s\n", m)
		}
	}
	return nil
}
