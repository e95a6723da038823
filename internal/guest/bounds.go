package guest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"unicode/utf8"

	"banger/internal/agent/proto"
	"banger/internal/api"
)

// Bounds on what the host accepts from a guest agent. The guest is root
// and may run any agent it likes: everything it sends is bounded here
// before the daemon keeps or forwards it.
const (
	// MaxReplyBytes bounds one agent reply line.
	MaxReplyBytes = 1 << 20
	// MaxMessageBytes bounds a message (an error, a check's detail); a
	// longer one is cut and marked.
	MaxMessageBytes = 1024
	// MaxNameBytes bounds a name (a check, a process).
	MaxNameBytes = 64
	// MaxCommandBytes bounds a process's command line; a longer one is cut.
	MaxCommandBytes = 1024
	// MaxPorts bounds the listening sockets one ports reply may list.
	MaxPorts = 4096
	// MaxChecks bounds the health checks of one reply.
	MaxChecks = 32
)

// readLine reads one newline-terminated line of at most max bytes
// (newline included) from r.
func readLine(r io.Reader, max int) ([]byte, error) {
	return readLineFrom(bufio.NewReader(r), max)
}

// readLineFrom reads one newline-terminated line of at most max bytes
// (newline included) from br, leaving what follows it in br.
func readLineFrom(br *bufio.Reader, max int) ([]byte, error) {
	line, err := proto.ReadLine(br, max)
	if err != nil {
		return nil, err
	}
	return line, nil
}

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "… (cut)"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// checkPorts validates a ports reply: at most MaxPorts entries, known
// protocols, real addresses and ports, process names of at most
// MaxNameBytes; command lines are cut to MaxCommandBytes.
func checkPorts(ports []api.VMPort) ([]api.VMPort, error) {
	if len(ports) > MaxPorts {
		return nil, fmt.Errorf("agent ports: the guest reported %d sockets, more than the %d banger lists", len(ports), MaxPorts)
	}
	for i := range ports {
		p := &ports[i]
		switch p.Proto {
		case "tcp", "udp", "tcp6", "udp6":
		default:
			return nil, fmt.Errorf("agent ports: entry %d: unknown protocol %.20q", i, p.Proto)
		}
		if p.BindAddress != "" && net.ParseIP(p.BindAddress) == nil {
			return nil, fmt.Errorf("agent ports: entry %d: bind address %.60q is not an IP address", i, p.BindAddress)
		}
		if p.Port < 0 || p.Port > 65535 || p.PID < 0 {
			return nil, fmt.Errorf("agent ports: entry %d: port %d or pid %d out of range", i, p.Port, p.PID)
		}
		if len(p.Process) > MaxNameBytes {
			return nil, fmt.Errorf("agent ports: entry %d: process name of %d bytes, more than %d", i, len(p.Process), MaxNameBytes)
		}
		if p.Endpoint != "" {
			return nil, errors.New("agent ports: the guest may not set endpoints")
		}
		p.Command = clip(p.Command, MaxCommandBytes)
	}
	return ports, nil
}

// checkHealth validates a health reply: at most MaxChecks checks with
// names of at most MaxNameBytes; details are cut to MaxMessageBytes.
func checkHealth(h *proto.Health) error {
	if len(h.Checks) > MaxChecks {
		return fmt.Errorf("agent health: the guest reported %d checks, more than %d", len(h.Checks), MaxChecks)
	}
	for i := range h.Checks {
		ch := &h.Checks[i]
		if len(ch.Name) > MaxNameBytes {
			return fmt.Errorf("agent health: check %d: name of %d bytes, more than %d", i, len(ch.Name), MaxNameBytes)
		}
		ch.Detail = clip(ch.Detail, MaxMessageBytes)
	}
	return nil
}
