package sshd

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Global request and channel types of remote forwarding (RFC 4254 7.1 and
// OpenSSH's PROTOCOL file).
const (
	reqTCPIPForward        = "tcpip-forward"
	reqCancelTCPIPForward  = "cancel-tcpip-forward"
	reqStreamLocalForward  = "streamlocal-forward@openssh.com"
	reqCancelStreamLocal   = "cancel-streamlocal-forward@openssh.com"
	reqNoMoreSessions      = "no-more-sessions@openssh.com"
	chanForwardedTCPIP     = "forwarded-tcpip"
	chanForwardedStreamLoc = "forwarded-streamlocal@openssh.com"
)

// tcpipForward is the payload of "tcpip-forward" and its cancel.
type tcpipForward struct {
	Addr string
	Port uint32
}

// forwardedTCPIP is the payload of a "forwarded-tcpip" channel open.
type forwardedTCPIP struct {
	Addr       string // the address as the client asked for it
	Port       uint32 // the port listened on
	OriginAddr string
	OriginPort uint32
}

// streamLocalForward is the payload of "streamlocal-forward@openssh.com"
// and its cancel.
type streamLocalForward struct {
	Path string
}

// forwardedStreamLocal is the payload of a
// "forwarded-streamlocal@openssh.com" channel open.
type forwardedStreamLocal struct {
	Path     string
	Reserved string
}

var errUnsupportedRequest = errors.New("unsupported request")

// handleGlobal answers the connection's global requests in order until the
// connection ends. Unknown requests (keepalive@openssh.com among them) get
// a failure reply when they want one.
func (cs *connState) handleGlobal(reqs <-chan *ssh.Request) {
	for req := range reqs {
		reply, err := cs.globalRequest(req)
		if err != nil && !errors.Is(err, errUnsupportedRequest) {
			cs.log.Info("ssh global request refused", "type", req.Type, "err", err)
		}
		if req.WantReply {
			req.Reply(err == nil, reply)
		}
	}
}

func (cs *connState) globalRequest(req *ssh.Request) ([]byte, error) {
	switch req.Type {
	case reqTCPIPForward:
		var p tcpipForward
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			return nil, fmt.Errorf("bad %s payload: %w", req.Type, err)
		}
		return cs.forwardTCP(p)
	case reqCancelTCPIPForward:
		var p tcpipForward
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			return nil, fmt.Errorf("bad %s payload: %w", req.Type, err)
		}
		if !cs.remove(tcpKey(p.Addr, p.Port)) {
			return nil, fmt.Errorf("no remote forward on %s", net.JoinHostPort(p.Addr, strconv.Itoa(int(p.Port))))
		}
		cs.log.Info("ssh remote forward cancelled", "addr", p.Addr, "port", p.Port)
		return nil, nil
	case reqStreamLocalForward:
		var p streamLocalForward
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			return nil, fmt.Errorf("bad %s payload: %w", req.Type, err)
		}
		return nil, cs.forwardUnix(p.Path)
	case reqCancelStreamLocal:
		var p streamLocalForward
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			return nil, fmt.Errorf("bad %s payload: %w", req.Type, err)
		}
		if !cs.remove(unixKey(p.Path)) {
			return nil, fmt.Errorf("no remote forward on %q", p.Path)
		}
		cs.log.Info("ssh remote forward cancelled", "path", p.Path)
		return nil, nil
	case reqNoMoreSessions:
		cs.mu.Lock()
		cs.noMoreSessions = true
		cs.mu.Unlock()
		return nil, nil
	default:
		return nil, errUnsupportedRequest
	}
}

func tcpKey(addr string, port uint32) string { return "tcp " + addr + " " + strconv.Itoa(int(port)) }
func unixKey(path string) string             { return "unix " + path }

// loopbackHosts maps a requested bind address to the guest addresses to
// listen on. Remote forwards listen on loopback only, as OpenSSH's sshd
// does with "GatewayPorts no"; other addresses (wildcards included) are
// refused rather than silently changed.
func loopbackHosts(addr string) ([]string, error) {
	switch addr {
	case "", "localhost":
		return []string{"127.0.0.1", "::1"}, nil
	}
	if ip := net.ParseIP(addr); ip != nil && ip.IsLoopback() {
		return []string{ip.String()}, nil
	}
	return nil, fmt.Errorf("bind address %q refused: remote forwards listen on the guest's loopback only (localhost, 127.0.0.1 or ::1)", addr)
}

// forwardTCP listens for a "tcpip-forward" request. The reply carries the
// allocated port when the client asked for port 0.
func (cs *connState) forwardTCP(p tcpipForward) ([]byte, error) {
	if p.Port > 65535 {
		return nil, fmt.Errorf("bad port %d", p.Port)
	}
	hosts, err := loopbackHosts(p.Addr)
	if err != nil {
		return nil, err
	}
	port := int(p.Port)
	ls, err := cs.add(func() (string, *listenerSet, error) {
		ls := &listenerSet{}
		for i, h := range hosts {
			ln, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				if i == 0 {
					return "", nil, fmt.Errorf("listen: %w", err)
				}
				// The second address is ::1, which the guest may lack.
				cs.log.Debug("ssh remote forward: skip address", "addr", h, "err", err)
				continue
			}
			port = ln.Addr().(*net.TCPAddr).Port
			ls.lns = append(ls.lns, ln)
		}
		return tcpKey(p.Addr, uint32(port)), ls, nil
	})
	if err != nil {
		return nil, err
	}
	for _, ln := range ls.lns {
		cs.serve(ln, chanForwardedTCPIP, func(c net.Conn) []byte {
			origin, _ := c.RemoteAddr().(*net.TCPAddr)
			f := forwardedTCPIP{Addr: p.Addr, Port: uint32(port)}
			if origin != nil {
				f.OriginAddr, f.OriginPort = origin.IP.String(), uint32(origin.Port)
			}
			return ssh.Marshal(f)
		})
	}
	cs.log.Info("ssh remote forward", "addr", p.Addr, "port", port)
	if p.Port == 0 {
		return ssh.Marshal(struct{ Port uint32 }{uint32(port)}), nil
	}
	return nil, nil
}

// forwardUnix listens for a "streamlocal-forward@openssh.com" request: a
// socket of mode 0600 at path (relative paths are taken from the session
// home), removed when the forward ends.
func (cs *connState) forwardUnix(path string) error {
	if path == "" || strings.ContainsRune(path, 0) {
		return fmt.Errorf("bad socket path %q", abbreviate(path))
	}
	full := path
	if !filepath.IsAbs(full) {
		full = filepath.Join(cs.srv.sys.home, full)
	}
	ls, err := cs.add(func() (string, *listenerSet, error) {
		sock, err := listenUnix(full, 0o600)
		if err != nil {
			return "", nil, err
		}
		return unixKey(path), &listenerSet{lns: []net.Listener{sock}, cleanup: sock.remove}, nil
	})
	if err != nil {
		return err
	}
	payload := ssh.Marshal(forwardedStreamLocal{Path: path})
	cs.serve(ls.lns[0], chanForwardedStreamLoc, func(net.Conn) []byte { return payload })
	cs.log.Info("ssh remote forward", "path", full)
	return nil
}
