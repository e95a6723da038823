package sshd

import (
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// session is one "session" channel: a shell, a command or a subsystem.
type session struct {
	srv  *server
	cs   *connState
	conn *ssh.ServerConn
	ch   ssh.Channel
	log  *slog.Logger

	// hangup is closed when the client goes away (channel closed or
	// connection lost) so a running process gets SIGHUP.
	hangup chan struct{}

	mu      sync.Mutex
	env     []string // from env requests
	term    string   // from pty-req; "" without a PTY
	hasPTY  bool
	winsize pty.Winsize
	ptmx    *os.File // the PTY master while a process runs on it
	pgid    int      // the running process group; 0 when none
	started bool
	agent   agentForward // set by auth-agent-req@openssh.com
}

// ptyRequest is the payload of "pty-req" (RFC 4254 6.2).
type ptyRequest struct {
	Term   string
	Cols   uint32
	Rows   uint32
	Width  uint32
	Height uint32
	Modes  string
}

// windowChange is the payload of "window-change" (RFC 4254 6.7).
type windowChange struct {
	Cols   uint32
	Rows   uint32
	Width  uint32
	Height uint32
}

// handleSession serves one session channel. It returns when the session's
// work ends or the client goes away; a process that outlives a hangup
// (ignores SIGHUP) is still reaped by a detached waiter.
func (s *server) handleSession(cs *connState, nch ssh.NewChannel, log *slog.Logger) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		log.Debug("accept session channel", "err", err)
		return
	}
	ss := &session{srv: s, cs: cs, conn: cs.conn, ch: ch, log: log, hangup: make(chan struct{})}
	defer ss.stopAgent()
	done := make(chan struct{})
	for req := range reqs {
		ok := ss.handleRequest(req, done)
		if req.WantReply && !ok {
			req.Reply(false, nil)
		}
	}
	close(ss.hangup)
	ss.mu.Lock()
	started := ss.started
	ss.mu.Unlock()
	if started {
		<-done
	}
	ch.Close()
}

// handleRequest handles one channel request and reports whether it
// succeeded; on success it has sent the reply. done is closed when the work
// started by shell/exec/subsystem has ended.
func (ss *session) handleRequest(req *ssh.Request, done chan struct{}) bool {
	if req.Type == "shell" || req.Type == "exec" || req.Type == "subsystem" {
		return ss.start(req, done)
	}
	ok := ss.handleSetting(req)
	if ok && req.WantReply {
		req.Reply(true, nil)
	}
	return ok
}

// handleSetting handles the requests that do not start work.
func (ss *session) handleSetting(req *ssh.Request) bool {
	switch req.Type {
	case "env":
		var kv struct{ Name, Value string }
		if ssh.Unmarshal(req.Payload, &kv) != nil || kv.Name == "" {
			return false
		}
		ss.mu.Lock()
		ss.env = append(ss.env, kv.Name+"="+kv.Value)
		ss.mu.Unlock()
		return true
	case "pty-req":
		var p ptyRequest
		if ssh.Unmarshal(req.Payload, &p) != nil {
			return false
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		ss.hasPTY, ss.term = true, p.Term
		ss.winsize = pty.Winsize{Cols: uint16(p.Cols), Rows: uint16(p.Rows), X: uint16(p.Width), Y: uint16(p.Height)}
		return true
	case "window-change":
		var w windowChange
		if ssh.Unmarshal(req.Payload, &w) != nil {
			return false
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		ss.winsize = pty.Winsize{Cols: uint16(w.Cols), Rows: uint16(w.Rows), X: uint16(w.Width), Y: uint16(w.Height)}
		if ss.ptmx != nil {
			pty.Setsize(ss.ptmx, &ss.winsize)
		}
		return true
	case "signal":
		var sig struct{ Name string }
		if ssh.Unmarshal(req.Payload, &sig) != nil {
			return false
		}
		return ss.signal(sig.Name)
	case reqAuthAgent:
		return ss.forwardAgent()
	default:
		return false
	}
}

// start replies to req and launches the session's work in the background.
func (ss *session) start(req *ssh.Request, done chan struct{}) bool {
	var arg struct{ Value string }
	if req.Type != "shell" && ssh.Unmarshal(req.Payload, &arg) != nil {
		return false
	}
	if req.Type == "subsystem" && arg.Value != "sftp" && arg.Value != agentSubsystem && arg.Value != watchSubsystem {
		ss.log.Debug("unknown subsystem", "name", arg.Value)
		return false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.started {
		return false
	}
	ss.started = true
	if req.WantReply {
		// Reply before any output or exit status can be sent.
		req.Reply(true, nil)
	}
	go func() {
		defer close(done)
		var st exitInfo
		switch req.Type {
		case "subsystem":
			ss.log.Info("ssh subsystem", "name", arg.Value)
			st = ss.runSubsystem(arg.Value)
		default:
			ss.log.Info("ssh "+req.Type, "command", arg.Value)
			st = ss.runProcess(arg.Value)
		}
		ss.finish(st)
	}()
	return true
}

// exitInfo is how a session's work ended.
type exitInfo struct {
	code   int
	signal string // SSH signal name when killed by a signal
	core   bool
	hungUp bool // the client went away; nothing to report
}

// finish reports the exit status and closes the channel.
//
// The status goes before EOF: a client that has sent its own EOF may
// close the channel as soon as it gets ours (OpenSSH does, ControlMaster
// included), and x/crypto/ssh answers that CLOSE at once and drops
// anything sent on the channel after it, so a status sent after EOF can
// be lost (a multiplexed ssh then exits 255). The output is all sent by
// now, so the status still comes after it.
func (ss *session) finish(st exitInfo) {
	// The agent socket is gone before the client learns the session ended.
	ss.stopAgent()
	if st.hungUp {
		return
	}
	var err error
	if st.signal != "" {
		_, err = ss.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{st.signal, st.core, "", ""}))
	} else {
		_, err = ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(st.code)}))
	}
	if err != nil {
		ss.log.Debug("ssh exit status not sent", "err", err)
	}
	ss.ch.CloseWrite()
	ss.ch.Close()
}

// signal delivers an SSH-named signal ("INT") to the running process group.
func (ss *session) signal(name string) bool {
	sig := unix.SignalNum("SIG" + name)
	if sig == 0 {
		return false
	}
	ss.mu.Lock()
	pgid := ss.pgid
	ss.mu.Unlock()
	if pgid == 0 {
		return false
	}
	return syscall.Kill(-pgid, sig) == nil
}
