package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"banger/internal/client"
	"banger/internal/paths"

	"github.com/spf13/cobra"
)

func newDaemonCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "daemon", Short: "Start, stop and inspect bangerd"}
	cmd.AddCommand(newDaemonStartCmd(a), newDaemonStopCmd(a), newDaemonStatusCmd(a))
	return cmd
}

func newDaemonStartCmd(a *app) *cobra.Command {
	var f struct {
		stateDir string
		bangerd  string
		timeout  time.Duration
	}
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Launch bangerd in the background unless it is running, and wait until it answers",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := a.client()
			if res, err := c.Ping(cmd.Context()); err == nil {
				fmt.Fprintf(a.stderr, "bangerd already running (pid %d)\n", res.PID)
				return a.output(res, func(io.Writer) error { return nil })
			}
			bin := f.bangerd
			if bin == "" {
				bin = siblingBinary("bangerd")
			}
			logPath := filepath.Join(f.stateDir, "logs", "bangerd.start.log")
			if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
				return fmt.Errorf("start daemon: %w", err)
			}
			logf, err := os.Create(logPath)
			if err != nil {
				return fmt.Errorf("start daemon: %w", err)
			}
			defer logf.Close()
			p := exec.Command(bin, "--socket", a.socket, "--state-dir", f.stateDir)
			p.Stdout, p.Stderr = logf, logf
			p.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := p.Start(); err != nil {
				return fmt.Errorf("start daemon %s: %w", bin, err)
			}
			exited := make(chan error, 1)
			go func() { exited <- p.Wait() }()
			deadline := time.After(f.timeout)
			for {
				if res, err := c.Ping(cmd.Context()); err == nil {
					fmt.Fprintf(a.stderr, "bangerd started (pid %d), socket %s\n", res.PID, a.socket)
					return a.output(res, func(io.Writer) error { return nil })
				}
				select {
				case <-exited:
					data, _ := os.ReadFile(logPath)
					return fmt.Errorf("bangerd exited at start: %s (log %s)", lastLine(string(data)), logPath)
				case <-deadline:
					return fmt.Errorf("bangerd did not answer within %s (log %s)", f.timeout, logPath)
				case <-time.After(50 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().StringVar(&f.stateDir, "state-dir", paths.DefaultStateDir(), "state directory (env "+paths.EnvHome+")")
	cmd.Flags().StringVar(&f.bangerd, "bangerd", "", "bangerd binary (default: next to banger, then PATH)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 15*time.Second, "how long to wait for the daemon to answer")
	return cmd
}

func newDaemonStopCmd(a *app) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop bangerd gracefully (running VMs keep running)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := a.client()
			res, err := c.Ping(cmd.Context())
			if err != nil {
				return err
			}
			if _, err := c.Shutdown(cmd.Context()); err != nil {
				return err
			}
			deadline := time.Now().Add(timeout)
			for time.Now().Before(deadline) {
				if _, err := c.Ping(cmd.Context()); errors.Is(err, client.ErrUnreachable) && !alive(res.PID) {
					fmt.Fprintf(a.stderr, "bangerd (pid %d) stopped\n", res.PID)
					return nil
				}
				time.Sleep(50 * time.Millisecond)
			}
			return fmt.Errorf("bangerd (pid %d) still running after %s", res.PID, timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 40*time.Second, "how long to wait for the daemon to exit")
	return cmd
}

func newDaemonStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Say whether bangerd runs (exit 3 when it does not)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := a.client().Ping(cmd.Context())
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) error {
				if _, err := fmt.Fprintf(w, "running: pid %d, version %s, socket %s\n", res.PID, res.Version, a.socket); err != nil {
					return err
				}
				if res.Accel == "" {
					return nil
				}
				_, err := fmt.Fprintf(w, "accelerator: %s (%s)\n", res.Accel, res.AccelReason)
				return err
			})
		},
	}
}

// siblingBinary finds name next to the running executable, else in PATH.
func siblingBinary(name string) string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func lastLine(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}
