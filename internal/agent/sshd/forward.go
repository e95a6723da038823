package sshd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// directTCPIP is the payload of a "direct-tcpip" channel open (RFC 4254 7.2).
type directTCPIP struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

// dialTimeout bounds connecting to a forwarding target.
const dialTimeout = 10 * time.Second

// handleDirectTCPIP connects to the requested address (ssh -L, ssh -W) and
// copies both ways, passing half-closes through.
func (s *server) handleDirectTCPIP(ctx context.Context, nch ssh.NewChannel, log *slog.Logger) {
	var req directTCPIP
	if err := ssh.Unmarshal(nch.ExtraData(), &req); err != nil {
		nch.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	addr := net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port)))
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		nch.Reject(ssh.ConnectionFailed, "connect "+addr+": "+err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		conn.Close()
		return
	}
	log.Debug("ssh forward", "to", addr)
	pipe(ch, reqs, conn)
}

// pipe copies between an SSH channel and a local connection both ways,
// passing half-closes through, until both directions end; it closes both.
func pipe(ch ssh.Channel, reqs <-chan *ssh.Request, conn net.Conn) {
	defer conn.Close()
	defer ch.Close()
	go func() {
		// The requests end when the channel closes: stop copying then.
		ssh.DiscardRequests(reqs)
		conn.Close()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		io.Copy(conn, ch)
		if hc, ok := conn.(interface{ CloseWrite() error }); ok {
			hc.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		io.Copy(ch, conn)
		ch.CloseWrite()
	}()
	wg.Wait()
}
