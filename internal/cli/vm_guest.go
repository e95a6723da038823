package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"banger/internal/guest"

	"github.com/spf13/cobra"
)

func newVMSSHCmd(a *app) *cobra.Command {
	var forwardAgent bool
	c := &cobra.Command{
		Use:               "ssh NAME [-- CMD...]",
		Short:             "Open a root shell (or run CMD) in a VM with the system's OpenSSH client",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			acc, err := a.vmAccess(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			sshBin, err := exec.LookPath("ssh")
			if err != nil {
				return errors.New("ssh (OpenSSH client) not found: install openssh-client")
			}
			argv := acc.sshArgs()
			if forwardAgent {
				argv = append([]string{"-A"}, argv...)
			}
			if len(args) > 1 {
				argv = append(argv, "--")
				argv = append(argv, args[1:]...)
			}
			p := exec.CommandContext(cmd.Context(), sshBin, argv...)
			p.Stdin, p.Stdout, p.Stderr = a.stdin, a.stdout, a.stderr
			return passExit(p.Run())
		},
	}
	c.Flags().BoolVarP(&forwardAgent, "forward-agent", "A", false, "forward your SSH agent (SSH_AUTH_SOCK) into the guest for this session")
	return c
}

func newVMExecCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "exec NAME -- CMD...",
		Short:             "Run a command in a VM without a TTY; stdout, stderr and exit status pass through",
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			acc, err := a.vmAccess(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			c, err := guest.Dial(cmd.Context(), net.JoinHostPort(acc.Host, strconv.Itoa(acc.Port)), acc.signer, acc.HostKey)
			if err != nil {
				return err
			}
			defer c.Close()
			code, err := c.Run(cmd.Context(), shellJoin(args[1:]), a.stdin, a.stdout, a.stderr)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
}

func newVMSSHConfigCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "ssh-config [NAME]",
		Short:             "Print an OpenSSH config block so 'ssh NAME.vm' and editors reach the VM",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			names := args
			if len(names) == 0 {
				vms, err := a.client().VMList(cmd.Context())
				if err != nil {
					return err
				}
				for _, v := range vms {
					if v.State == "running" {
						names = append(names, v.Name)
					}
				}
			}
			for _, n := range names {
				acc, err := a.vmAccess(cmd.Context(), n)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, acc.sshConfig())
			}
			return nil
		},
	}
}

func newVMHealthCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "health NAME",
		Short:             "Check the guest agent, writable root and work disk, and the clock",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := a.client().VMHealth(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			err = a.output(res, func(w io.Writer) error {
				rows := [][]string{}
				for _, c := range res.Checks {
					rows = append(rows, []string{safe(c.Name), okWord(c.OK), safe(c.Detail)})
				}
				return table(w, []string{"CHECK", "RESULT", "DETAIL"}, rows)
			})
			if err == nil && !res.Healthy {
				return exitError{ExitFailed}
			}
			return err
		},
	}
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAILED"
}

func newVMPingCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "ping NAME",
		Short:             "Check the VM answers over its network",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			res, err := a.client().VMPing(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			err = a.output(res, func(w io.Writer) error {
				if res.Alive {
					_, err := fmt.Fprintf(w, "%s is alive (%s)\n", res.Name, time.Since(start).Round(time.Millisecond))
					return err
				}
				_, err := fmt.Fprintf(w, "%s does not answer\n", res.Name)
				return err
			})
			if err == nil && !res.Alive {
				return exitError{ExitFailed}
			}
			return err
		},
	}
}

func newVMPortsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "ports NAME",
		Short:             "List the guest's listening TCP and UDP sockets",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := a.client().VMPorts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) error {
				rows := [][]string{}
				for _, p := range res.Ports {
					rows = append(rows, []string{safe(p.Proto), dash(safe(p.BindAddress)), fmt.Sprint(p.Port), pidText(p.PID), dash(safe(p.Process)), safe(p.Endpoint), forwardedText(p)})
				}
				return table(w, []string{"PROTO", "ADDRESS", "PORT", "PID", "PROCESS", "ENDPOINT", "FORWARDED"}, rows)
			})
		},
	}
}

// passExit turns a child's exit status into ours.
func passExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError{ee.ExitCode()}
	}
	return err
}

// shellJoin quotes argv for a POSIX shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, s := range args {
		if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			q[i] = s
			continue
		}
		q[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
