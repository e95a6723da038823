package sshd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// Agent forwarding (OpenSSH's PROTOCOL file, "auth-agent@openssh.com").
const (
	reqAuthAgent  = "auth-agent-req@openssh.com"
	chanAuthAgent = "auth-agent@openssh.com"
)

// agentForward is a session's forwarded agent socket.
type agentForward struct {
	key  string // the connection's listener key; "" when none
	path string // the socket, SSH_AUTH_SOCK of the session's processes
}

// forwardAgent handles auth-agent-req@openssh.com: a socket of mode 0600 in
// a fresh directory of mode 0700, each connection to which is carried to
// the client's agent. It must come before the session starts its work;
// the socket is removed when the session ends.
func (ss *session) forwardAgent() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.started || ss.agent.key != "" {
		return false
	}
	var fwd agentForward
	ls, err := ss.cs.add(func() (string, *listenerSet, error) {
		dir, err := makeAgentDir(ss.srv.sys.agentDirs)
		if err != nil {
			return "", nil, err
		}
		sock, err := listenUnix(filepath.Join(dir, "agent"), 0o600)
		if err != nil {
			os.Remove(dir)
			return "", nil, err
		}
		fwd = agentForward{key: "agent " + dir, path: sock.path}
		cleanup := func() {
			sock.remove()
			os.Remove(dir)
		}
		return fwd.key, &listenerSet{lns: []net.Listener{sock}, cleanup: cleanup}, nil
	})
	if err != nil {
		ss.log.Info("ssh agent forwarding refused", "err", err)
		return false
	}
	ss.cs.serve(ls.lns[0], chanAuthAgent, func(net.Conn) []byte { return nil })
	ss.agent = fwd
	ss.log.Info("ssh agent forwarding", "socket", fwd.path)
	return true
}

// agentSocket is the session's forwarded agent socket, "" when none.
func (ss *session) agentSocket() string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.agent.path
}

// stopAgent removes the session's agent socket and its directory, if any.
func (ss *session) stopAgent() {
	ss.mu.Lock()
	key := ss.agent.key
	ss.agent = agentForward{}
	ss.mu.Unlock()
	if key != "" {
		ss.cs.remove(key)
	}
}

// makeAgentDir creates a fresh directory of mode 0700 in the first of dirs
// where that works.
func makeAgentDir(dirs []string) (string, error) {
	errs := []error{}
	for _, parent := range dirs {
		dir, err := os.MkdirTemp(parent, "ssh-")
		if err == nil {
			return dir, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("create agent socket directory: %w", errors.Join(errs...))
}
