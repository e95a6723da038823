package sshd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Limits of one SSH connection.
const (
	// maxListeners bounds the remote forwards and agent sockets one
	// connection holds open at a time.
	maxListeners = 64
	// maxForwardConns bounds the connections accepted on those listeners
	// and being carried to the client at a time; more are closed at once.
	maxForwardConns = 256
)

var errConnClosed = errors.New("connection is closing")

// connState is what one SSH connection owns beside its channels: the
// listeners of its remote forwards and agent sockets, all closed (and their
// socket files removed) when the connection ends.
type connState struct {
	srv  *server
	conn *ssh.ServerConn
	log  *slog.Logger
	wg   sync.WaitGroup // accept loops and the connections they carry

	mu             sync.Mutex
	closed         bool
	listeners      map[string]*listenerSet // by forward key
	forwardConns   int                     // carried connections in flight
	noMoreSessions bool                    // the client sent no-more-sessions@openssh.com
}

// listenerSet is what one forward or agent socket listens on.
type listenerSet struct {
	lns     []net.Listener
	cleanup func() // removes files; nil when there are none
}

func (l *listenerSet) close() {
	for _, ln := range l.lns {
		ln.Close()
	}
	if l.cleanup != nil {
		l.cleanup()
	}
}

func newConnState(s *server, conn *ssh.ServerConn, log *slog.Logger) *connState {
	return &connState{srv: s, conn: conn, log: log, listeners: map[string]*listenerSet{}}
}

// add creates listeners with open, with the lock held and within the
// limit, and registers them under the key open returns.
func (cs *connState) add(open func() (string, *listenerSet, error)) (*listenerSet, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return nil, errConnClosed
	}
	if len(cs.listeners) >= maxListeners {
		return nil, fmt.Errorf("limit of %d forwards and agent sockets per connection reached", maxListeners)
	}
	key, ls, err := open()
	if err != nil {
		return nil, err
	}
	if _, ok := cs.listeners[key]; ok {
		ls.close()
		return nil, errors.New("already forwarded")
	}
	cs.listeners[key] = ls
	return ls, nil
}

// remove closes the listener set under key and reports whether there was one.
func (cs *connState) remove(key string) bool {
	cs.mu.Lock()
	ls, ok := cs.listeners[key]
	delete(cs.listeners, key)
	cs.mu.Unlock()
	if ok {
		ls.close()
	}
	return ok
}

// close closes every listener and waits for the carried connections to
// end; the SSH connection is already closed, so they end promptly.
func (cs *connState) close() {
	cs.mu.Lock()
	cs.closed = true
	all := cs.listeners
	cs.listeners = map[string]*listenerSet{}
	cs.mu.Unlock()
	for _, ls := range all {
		ls.close()
	}
	cs.wg.Wait()
}

// serve accepts on ln until it is closed and carries each connection to
// the client in a new channel of type chanType with the payload payload
// returns for it.
func (cs *connState) serve(ln net.Listener, chanType string, payload func(net.Conn) []byte) {
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				var ne net.Error
				if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
					// Out of file descriptors for a moment: keep listening.
					time.Sleep(100 * time.Millisecond)
					continue
				}
				return // closed
			}
			if !cs.acquireConn() {
				cs.log.Warn("ssh forward: too many connections; closing one", "type", chanType)
				c.Close()
				continue
			}
			cs.wg.Add(1)
			go func() {
				defer cs.wg.Done()
				defer cs.releaseConn()
				cs.carry(c, chanType, payload(c))
			}()
		}
	}()
}

// carry opens a channel to the client for the accepted connection c and
// copies between them.
func (cs *connState) carry(c net.Conn, chanType string, payload []byte) {
	ch, reqs, err := cs.conn.OpenChannel(chanType, payload)
	if err != nil {
		cs.log.Debug("ssh forward: client refused channel", "type", chanType, "err", err)
		c.Close()
		return
	}
	pipe(ch, reqs, c)
}

func (cs *connState) acquireConn() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.forwardConns >= maxForwardConns {
		return false
	}
	cs.forwardConns++
	return true
}

func (cs *connState) releaseConn() {
	cs.mu.Lock()
	cs.forwardConns--
	cs.mu.Unlock()
}

// sessionsAllowed reports whether the client may still open sessions.
func (cs *connState) sessionsAllowed() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return !cs.noMoreSessions
}
