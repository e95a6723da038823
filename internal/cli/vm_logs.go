package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"banger/internal/api"
	"banger/internal/termsafe"

	"github.com/spf13/cobra"
)

func newVMLogsCmd(a *app) *cobra.Command {
	var follow, raw bool
	cmd := &cobra.Command{
		Use:               "logs NAME",
		Short:             "Print the serial console log path; -f follows it",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := a.client().VMLogs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !follow {
				return a.output(api.VMLogsResult{LogPath: path}, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, path)
					return err
				})
			}
			// The console is the guest's: on a terminal its control
			// characters and escape sequences are shown escaped unless
			// --raw; piped, the bytes pass as they are.
			if raw || !a.isTTY(a.stdout) {
				return followFile(cmd.Context(), path, a.stdout)
			}
			w := termsafe.NewWriter(a.stdout)
			err = followFile(cmd.Context(), path, w)
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "print the log and follow it")
	cmd.Flags().BoolVar(&raw, "raw", false, "with -f on a terminal: print the console's bytes as they are (escape sequences included)")
	return cmd
}

// followFile copies a growing file to w until ctx ends. The daemon rotates
// the serial log (path becomes path.1 and a new path starts): once the open
// file is read to its end and path names another file, that one is followed
// from its start.
func followFile(ctx context.Context, path string, w io.Writer) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("the serial log %s is in banger's private state folder, readable by root only: follow it with sudo", path)
	}
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer func() { f.Close() }()
	for {
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if next, ok := rotated(f, path); ok {
			if _, err := io.Copy(w, f); err != nil { // what was written before the rename
				next.Close()
				return err
			}
			f.Close()
			f = next
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rotated opens path when it is no longer the file f.
func rotated(f *os.File, path string) (*os.File, bool) {
	cur, err := f.Stat()
	if err != nil {
		return nil, false
	}
	next, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	if fi, err := next.Stat(); err != nil || os.SameFile(cur, fi) {
		next.Close()
		return nil, false
	}
	return next, true
}
