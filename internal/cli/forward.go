package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func newVMForwardCmd(a *app) *cobra.Command {
	var f struct {
		list, remove, remap bool
		unix                string
	}
	cmd := &cobra.Command{
		Use:   "forward NAME [HOST_ADDR:]HOST_PORT:GUEST_PORT | GUEST_PORT",
		Short: "Forward a port on the host's loopback to a guest port (only you and root may connect)",
		Long: `Forward a port on the host's loopback to a guest port: the daemon listens on 127.0.0.1
(and ::1) and carries each connection through the VM's agent to the port as the guest binds
it, guest loopback included. Only the VM's owner and root may connect (the kernel refuses
others). GUEST_PORT alone forwards the same host port. Forwards persist with the VM.

  banger vm forward dev 3000              # localhost:3000 -> guest port 3000
  banger vm forward dev 8080:80 --remap   # a free host port when 8080 is busy
  banger vm forward dev --unix /run/user/1000/dev.sock 5432   # a 0600 Unix socket, made as you
  banger vm forward dev --list
  banger vm forward dev 8080 --remove     # by host port
  banger vm forward dev --remove --unix /run/user/1000/dev.sock`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: a.completeVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			name := args[0]
			switch {
			case f.list:
				if len(args) != 1 {
					return usagef("--list takes only the VM name")
				}
				res, err := c.VMForwardList(cmd.Context(), name)
				if err != nil {
					return err
				}
				return a.output(res, func(w io.Writer) error { return forwardTable(w, res) })
			case f.remove && f.unix != "":
				if len(args) != 1 {
					return usagef("--remove --unix PATH takes only the VM name")
				}
				if err := c.VMForwardRemove(cmd.Context(), api.VMForwardRemoveParams{IDOrName: name, UnixPath: f.unix}); err != nil {
					return err
				}
				return a.output(api.Empty{}, func(w io.Writer) error { return nil })
			case len(args) != 2:
				return usagef("give a port: [HOST_ADDR:]HOST_PORT:GUEST_PORT or GUEST_PORT (or --list)")
			}
			if f.unix != "" {
				guest, err := strconv.Atoi(args[1])
				if err != nil {
					return usagef("with --unix give the guest port alone, not %q", args[1])
				}
				if !filepath.IsAbs(f.unix) {
					abs, err := filepath.Abs(f.unix)
					if err != nil {
						return err
					}
					f.unix = abs
				}
				fw, err := c.VMForwardAdd(cmd.Context(), api.VMForwardParams{IDOrName: name, UnixPath: f.unix, GuestPort: guest})
				if err != nil {
					return err
				}
				return a.output(fw, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "%s -> %s guest port %d\n", safe(fw.UnixPath), name, fw.GuestPort)
					return err
				})
			}
			addr, host, guest, err := parseForwardSpec(args[1])
			if err != nil {
				return usagef("%v", err)
			}
			if f.remove {
				if err := c.VMForwardRemove(cmd.Context(), api.VMForwardRemoveParams{IDOrName: name, HostPort: host}); err != nil {
					return err
				}
				return a.output(api.Empty{}, func(w io.Writer) error { return nil })
			}
			fw, err := c.VMForwardAdd(cmd.Context(), api.VMForwardParams{IDOrName: name, HostAddr: addr, HostPort: host, GuestPort: guest, Remap: f.remap})
			if err != nil {
				return err
			}
			return a.output(fw, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s -> %s guest port %d\n", forwardAddrs(fw), name, fw.GuestPort)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&f.list, "list", false, "list the VM's forwards (explicit and automatic) and conflicts")
	cmd.Flags().BoolVar(&f.remove, "remove", false, "remove the forward on HOST_PORT")
	cmd.Flags().BoolVar(&f.remap, "remap", false, "pick a free host port when HOST_PORT is busy (shown)")
	cmd.Flags().StringVar(&f.unix, "unix", "", "forward a Unix socket at this path (mode 0600, made as you) instead of a host port")
	return cmd
}

// parseForwardSpec reads [HOST_ADDR:]HOST_PORT:GUEST_PORT or GUEST_PORT
// (then the host port is the same; with --remove, the one port is the
// host port). HOST_ADDR may be bracketed ([::1]).
func parseForwardSpec(s string) (addr string, host, guest int, err error) {
	bad := fmt.Errorf("bad forward %q: use [HOST_ADDR:]HOST_PORT:GUEST_PORT or GUEST_PORT", s)
	i := strings.LastIndex(s, ":")
	if i < 0 {
		p, err := strconv.Atoi(s)
		if err != nil {
			return "", 0, 0, bad
		}
		return "", p, p, nil
	}
	if guest, err = strconv.Atoi(s[i+1:]); err != nil {
		return "", 0, 0, bad
	}
	rest := s[:i]
	if j := strings.LastIndex(rest, ":"); j >= 0 && !strings.HasSuffix(rest, "]") {
		addr, rest = strings.TrimSuffix(strings.TrimPrefix(rest[:j], "["), "]"), rest[j+1:]
		if addr == "" {
			return "", 0, 0, bad
		}
	}
	if host, err = strconv.Atoi(rest); err != nil {
		return "", 0, 0, bad
	}
	return addr, host, guest, nil
}

func forwardAddrs(f api.VMForward) string {
	if f.UnixPath != "" {
		return "unix:" + safe(f.UnixPath)
	}
	if len(f.HostAddrs) == 0 {
		return fmt.Sprintf("port %d", f.HostPort)
	}
	var out []string
	for _, a := range f.HostAddrs {
		if strings.Contains(a, ":") {
			a = "[" + a + "]"
		}
		out = append(out, fmt.Sprintf("%s:%d", a, f.HostPort))
	}
	return strings.Join(out, ", ")
}

func forwardTable(w io.Writer, res api.VMForwardListResult) error {
	mode := res.Mode
	if res.Remap {
		mode += " (remap)"
	}
	if _, err := fmt.Fprintf(w, "forward mode: %s\n", mode); err != nil {
		return err
	}
	rows := [][]string{}
	for _, f := range res.Forwards {
		kind := "explicit"
		if f.Auto {
			kind = "auto"
		}
		state := "forwarded"
		if f.Conflict != "" {
			state = "conflict: " + safe(f.Conflict)
		}
		rows = append(rows, []string{forwardAddrs(f), strconv.Itoa(f.GuestPort), kind, state})
	}
	return table(w, []string{"HOST", "GUEST PORT", "KIND", "STATE"}, rows)
}

// forwardedText is a port's FORWARDED column in `vm ports`.
func forwardedText(p api.VMPort) string {
	switch {
	case p.Forwarded != "":
		return safe(p.Forwarded)
	case p.ForwardConflict != "":
		return "conflict: " + safe(p.ForwardConflict)
	}
	return "-"
}

// forwardHost is a forward's host side in vm list and vm show: the host
// port, or unix:PATH.
func forwardHost(f api.VMForward) string {
	if f.UnixPath != "" {
		return "unix:" + safe(f.UnixPath)
	}
	return strconv.Itoa(f.HostPort)
}

// portsColumn is vm list's PORTS: the forwards that carry traffic, as
// HOST->GUEST, the first maxPortsShown and how many more ("-" when none).
// Conflicts carry nothing and are left out (vm show and vm forward --list
// say why).
func portsColumn(fs []api.VMForward) string {
	const maxPortsShown = 4
	var out []string
	for _, f := range fs {
		if f.Conflict == "" {
			out = append(out, fmt.Sprintf("%s->%d", forwardHost(f), f.GuestPort))
		}
	}
	switch {
	case len(out) == 0:
		return "-"
	case len(out) > maxPortsShown:
		return strings.Join(out[:maxPortsShown], ",") + fmt.Sprintf(",+%d more", len(out)-maxPortsShown)
	}
	return strings.Join(out, ",")
}

// forwardsLine is vm show's forwards: each as HOST->GUEST, marked auto
// when it follows a guest listener, with the conflict when it carries nothing.
func forwardsLine(fs []api.VMForward) string {
	var out []string
	for _, f := range fs {
		s := fmt.Sprintf("%s->%d", forwardHost(f), f.GuestPort)
		var notes []string
		if f.Auto {
			notes = append(notes, "auto")
		}
		if f.Conflict != "" {
			notes = append(notes, "not forwarded: "+safe(f.Conflict))
		}
		if len(notes) > 0 {
			s += " (" + strings.Join(notes, "; ") + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}
