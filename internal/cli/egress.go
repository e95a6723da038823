package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"banger/internal/model"
)

// egressFlags are --egress, --allow and --deny of vm create and vm set.
type egressFlags struct {
	mode        string
	allow, deny []string
}

func addEgressFlags(fl *pflag.FlagSet, f *egressFlags) {
	fl.StringVar(&f.mode, "egress", "", "outbound policy: none, open (NAT, same as --nat) or allow (only what --allow lists); applies live")
	fl.StringSliceVar(&f.allow, "allow", nil, "with --egress allow: domains, *.domain wildcards, IPv4 addresses or CIDRs, each with an optional :PORT (comma-separated)")
	fl.StringSliceVar(&f.deny, "deny", nil, "IPv4 addresses or CIDRs never reached, whatever else allows (comma-separated)")
}

// policy is the policy the flags ask for, nil when none of them was given.
// The daemon checks the entries themselves.
func (f *egressFlags) policy(fl *pflag.FlagSet, nat *bool) (*model.EgressPolicy, error) {
	if !fl.Changed("egress") && !fl.Changed("allow") && !fl.Changed("deny") {
		return nil, nil
	}
	switch f.mode {
	case model.EgressNone, model.EgressOpen, model.EgressAllow:
	case "":
		return nil, usagef("--allow and --deny go with --egress none|open|allow")
	default:
		return nil, usagef("--egress %q: want none, open or allow", f.mode)
	}
	if len(f.allow) > 0 && f.mode != model.EgressAllow {
		return nil, usagef("--allow needs --egress allow")
	}
	if nat != nil && fl.Changed("nat") && *nat != (f.mode == model.EgressOpen) {
		return nil, usagef("--nat means --egress open; it cannot go with --egress %s", f.mode)
	}
	return &model.EgressPolicy{Mode: f.mode, Allow: f.allow, Deny: f.deny}, nil
}

func newVMEgressCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "egress NAME",
		Short:             "Show a VM's outbound policy and its recent denials",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := a.client().VMEgress(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) error {
				if err := keyValues(w, [][2]string{
					{"name", res.Name}, {"network", res.Network}, {"egress", res.Policy.Mode},
					{"allow", strings.Join(res.Policy.Allow, ", ")}, {"deny", strings.Join(res.Policy.Deny, ", ")},
				}); err != nil {
					return err
				}
				if len(res.Denials) == 0 {
					_, err := fmt.Fprintln(w, "no recent denials")
					return err
				}
				fmt.Fprintln(w)
				rows := [][]string{}
				for _, d := range res.Denials {
					rows = append(rows, []string{d.Time.Local().Format(time.DateTime), d.Via,
						dash(d.Destination), dash(safe(d.Name)), safe(d.Reason)})
				}
				return table(w, []string{"TIME", "VIA", "DESTINATION", "NAME", "REASON"}, rows)
			})
		},
	}
}

// egressWord is a VM's policy in one line, for vm show.
func egressWord(v model.VMRecord) string {
	p := v.EffectiveEgress()
	s := p.Mode
	if len(p.Allow) > 0 {
		s += " " + strings.Join(p.Allow, ",")
	}
	if len(p.Deny) > 0 {
		s += " (deny " + strings.Join(p.Deny, ",") + ")"
	}
	return s
}
