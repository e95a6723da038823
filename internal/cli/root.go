// Package cli is the banger command line: one file per command group, flags
// bound to a struct made inside each command's constructor, results on
// stdout, progress and errors on stderr.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"banger/internal/api"
	"banger/internal/client"
	"banger/internal/paths"
	"banger/internal/termsafe"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit codes (documented in README.md).
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitUnreachable = 3
)

// app is the state shared by every command of one invocation.
type app struct {
	socket string
	json   bool
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// exitCode, when set by a command (e.g. a guest command's status), wins.
	exitCode *int
	// isTTY reports whether w is a terminal (tests replace it).
	isTTY func(w io.Writer) bool
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (a *app) client() *client.Client { return client.New(a.socket) }

// usageError marks an error as a usage error (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries an exit code with no message (the command already said why).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the CLI and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return mainWith(args, stdin, stdout, stderr, isTerminal)
}

// mainWith is Main with the terminal check given.
func mainWith(args []string, stdin io.Reader, stdout, stderr io.Writer, isTTY func(io.Writer) bool) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, isTTY: isTTY}
	root := newRoot(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Errors can quote the guest (agent messages, its console): the line
	// is escaped so it cannot drive the terminal.
	msg := strings.TrimSpace(err.Error())
	fmt.Fprintf(stderr, "banger: %s\n", termsafe.Line(strings.SplitN(msg, "\n", 2)[0]))
	switch {
	case errors.As(err, new(usageError)), isCobraUsage(err):
		fmt.Fprintf(stderr, "Run 'banger --help' for usage.\n")
		return ExitUsage
	case errors.Is(err, client.ErrUnreachable):
		fmt.Fprintf(stderr, "hint: start the daemon with 'banger daemon start' (or 'systemctl start bangerd')\n")
		return ExitUnreachable
	case errors.Is(err, api.ErrInvalid):
		return ExitFailed
	}
	return ExitFailed
}

// isCobraUsage recognises cobra's own argument and flag errors.
func isCobraUsage(err error) bool {
	m := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "flag needs an argument", "invalid argument", "required flag"} {
		if strings.HasPrefix(m, p) || strings.Contains(m, p) && strings.Contains(m, "flag") {
			return true
		}
	}
	return false
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "banger",
		Short:         "Disposable Linux microVMs for developers and coding agents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.socket, "socket", paths.DefaultSocket(), "daemon socket (env "+paths.EnvSocket+")")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print results as JSON")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newVersionCmd(a),
		newPingCmd(a),
		newDaemonCmd(a),
		newKernelCmd(a),
		newImageCmd(a),
		newVMCmd(a),
		newSnapshotCmd(a),
		newSecretCmd(a),
		newDNSCmd(a),
		newMCPCmd(a),
	)
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %s (got %d arguments)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}
