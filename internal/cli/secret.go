package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"banger/internal/api"
	"banger/internal/model"
	"banger/internal/secrets"
)

func newSecretCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Keep secrets a VM can use but never read (values never printed)"}
	cmd.AddCommand(newSecretAddCmd(a), newSecretListCmd(a), newSecretShowCmd(a), newSecretRmCmd(a))
	return cmd
}

func newSecretAddCmd(a *app) *cobra.Command {
	var p api.SecretAddParams
	cmd := &cobra.Command{
		Use:   "add NAME --host HOST [--host HOST2] [--header 'Authorization: Bearer {}'] [--basic USER] [--plain-http]",
		Short: "Add a secret; its value is read from standard input (never from the command line)",
		Long: `Add a secret bound to the hosts it may be sent to. The value is read from
standard input: typed without echo on a terminal, or piped (one trailing
newline is dropped): banger secret add gh --host api.github.com < token.txt

A VM bound to it (vm create|set --secret NAME[=ENVVAR]) holds only a
placeholder; banger's egress proxy puts the value into requests to HOST.`,
		Args: exactArgs(1, "a secret name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			if err := secrets.CheckName(p.Name); err != nil {
				return usageError{err}
			}
			if len(p.Hosts) == 0 {
				return usagef("--host is required: the hosts the secret may be sent to (api.example.com or *.example.com)")
			}
			if err := secrets.CheckHeader(p.Header); err != nil {
				return usageError{err}
			}
			v, err := a.readSecretValue(p.Name)
			if err != nil {
				return err
			}
			p.Value = v
			sec, err := a.client().SecretAdd(cmd.Context(), p)
			clear(v)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "secret %s added (bound to %s)\n", sec.Name, strings.Join(sec.Hosts, ", "))
			return a.output(sec, func(io.Writer) error { return nil })
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&p.Hosts, "host", nil, "a host the value may be sent to: api.example.com or *.example.com (repeatable)")
	fl.StringVar(&p.Header, "header", "", "only this header carries it: 'Name: template' with {} for the value, e.g. 'Authorization: Bearer {}'")
	fl.StringVar(&p.BasicUser, "basic", "", "Basic-auth mode: the guest sends USER:placeholder (as git does over HTTPS)")
	fl.BoolVar(&p.PlainHTTP, "plain-http", false, "the guest's http://HOST/ requests get the value and go on as https://HOST/")
	return cmd
}

// readSecretValue reads a secret's value from standard input: without
// echo on a terminal, else at most MaxValueBytes, one trailing newline
// dropped. An empty value is refused.
func (a *app) readSecretValue(name string) ([]byte, error) {
	var v []byte
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(a.stderr, "value of secret %s (not echoed): ", name)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return nil, fmt.Errorf("read the secret value: %w", err)
		}
		v = b
	} else {
		b, err := io.ReadAll(io.LimitReader(a.stdin, secrets.MaxValueBytes+3))
		if err != nil {
			return nil, fmt.Errorf("read the secret value from standard input: %w", err)
		}
		v = b
	}
	v = bytes.TrimSuffix(v, []byte("\n"))
	v = bytes.TrimSuffix(v, []byte("\r"))
	if len(v) == 0 {
		return nil, usagef("the secret value is empty: give it on standard input (banger secret add %s --host H < file)", name)
	}
	if len(v) > secrets.MaxValueBytes {
		return nil, usagef("the secret value is larger than %d bytes", secrets.MaxValueBytes)
	}
	return v, nil
}

func newSecretListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List your secrets (never their values)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			secs, err := a.client().SecretList(cmd.Context())
			if err != nil {
				return err
			}
			sort.Slice(secs, func(i, j int) bool { return secs[i].Name < secs[j].Name })
			return a.output(secs, func(w io.Writer) error {
				rows := [][]string{}
				for _, s := range secs {
					rows = append(rows, []string{s.Name, strings.Join(s.Hosts, ","), s.Mode(), s.CreatedAt.Local().Format(time.DateTime)})
				}
				return table(w, []string{"NAME", "HOSTS", "MODE", "CREATED"}, rows)
			})
		},
	}
}

func newSecretShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a secret's hosts and mode and the VMs it is bound to (never its value)",
		Args:  exactArgs(1, "a secret name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := a.client().SecretShow(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) error {
				s := res.Secret
				vms := strings.Join(res.VMs, ", ")
				if vms == "" {
					vms = "-"
				}
				return keyValues(w, [][2]string{{"name", s.Name}, {"id", s.ID}, {"owner", fmt.Sprint(s.OwnerUID)},
					{"hosts", strings.Join(s.Hosts, ", ")}, {"mode", s.Mode()},
					{"created", s.CreatedAt.Local().Format(time.DateTime)}, {"vms", vms}})
			})
		},
	}
}

func newSecretRmCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a secret and its value (refused while a VM has it bound)",
		Args:  exactArgs(1, "a secret name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().SecretRemove(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "secret %s removed\n", args[0])
			return nil
		},
	}
}

// secretFlags are vm create|set's --secret (and set's --no-secret).
type secretFlags struct {
	bind, unbind []string
}

func addSecretFlags(fl *pflag.FlagSet, f *secretFlags, unbind bool) {
	fl.StringArrayVar(&f.bind, "secret", nil, "bind secret NAME; the guest holds a placeholder in $ENVVAR (default NAME upper-cased, '-' as '_') (repeatable)")
	if unbind {
		fl.StringArrayVar(&f.unbind, "no-secret", nil, "unbind secret NAME (repeatable; on a running VM new sessions and /run/banger/secrets change at once)")
	}
}

// refs parses --secret NAME[=ENVVAR] values.
func (f *secretFlags) refs() ([]api.SecretRef, error) {
	var out []api.SecretRef
	for _, s := range f.bind {
		name, env, hasEnv := strings.Cut(s, "=")
		if name == "" || (hasEnv && env == "") {
			return nil, usagef("--secret %q: want NAME or NAME=ENVVAR", s)
		}
		if hasEnv {
			if err := secrets.CheckEnv(env); err != nil {
				return nil, usagef("--secret %s: %v", s, err)
			}
		}
		out = append(out, api.SecretRef{Name: name, Env: env})
	}
	for _, s := range f.unbind {
		if s == "" {
			return nil, usagef("--no-secret needs a secret name")
		}
	}
	return out, nil
}

// bindingsText lists a VM's secrets as NAME ($ENV).
func bindingsText(bs []model.SecretBinding) string {
	var out []string
	for _, b := range bs {
		out = append(out, fmt.Sprintf("%s ($%s)", b.Name, b.Env))
	}
	return strings.Join(out, ", ")
}
