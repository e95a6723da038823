package sshd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/pkg/sftp"

	"banger/internal/agent/proto"
)

const agentSubsystem = proto.Subsystem

// maxRequestLine bounds one agent protocol request.
const maxRequestLine = 1 << 20

// runSubsystem serves the sftp or banger-agent subsystem on the channel.
func (ss *session) runSubsystem(name string) exitInfo {
	if name == "sftp" {
		// The sftp server closes its stream when done; the channel must stay
		// open until the exit status is sent.
		srv, err := sftp.NewServer(keepOpen{ss.ch}, sftp.WithServerWorkingDirectory(ss.srv.sys.home))
		if err != nil {
			ss.log.Warn("start sftp server", "err", err)
			return exitInfo{code: 1}
		}
		defer srv.Close()
		if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
			ss.log.Debug("sftp session ended", "err", err)
		}
		return exitInfo{code: 0}
	}
	if err := ss.srv.serveAgent(ss.ch, ss.ch); err != nil {
		ss.log.Debug("agent session ended", "err", err)
	}
	return exitInfo{code: 0}
}

// keepOpen is a stream whose Close does nothing.
type keepOpen struct{ io.ReadWriter }

func (keepOpen) Close() error { return nil }

// serveAgent answers newline-delimited JSON requests from r on w until r ends.
func (s *server) serveAgent(r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxRequestLine)
	enc := json.NewEncoder(w)
	for sc.Scan() {
		var req proto.Request
		var resp proto.Response
		var after func()
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = fmt.Sprintf("decode request: %v", err)
		} else {
			result, then, err := s.agentOp(req)
			after = then
			switch {
			case err != nil:
				resp.Error = fmt.Sprintf("%s: %v", req.Op, err)
			case result != nil:
				raw, err := json.Marshal(result)
				if err != nil {
					resp.Error = fmt.Sprintf("%s: encode result: %v", req.Op, err)
					break
				}
				resp.OK, resp.Result = true, raw
			default:
				resp.OK = true
			}
		}
		if err := enc.Encode(resp); err != nil {
			return fmt.Errorf("write agent response: %w", err)
		}
		if after != nil {
			go after()
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read agent request: %w", err)
	}
	return nil
}

// agentOp runs one op. It returns the result (nil for none) and a function
// to call once the answer is sent.
func (s *server) agentOp(req proto.Request) (any, func(), error) {
	switch req.Op {
	case proto.OpPing:
		return nil, nil, nil
	case proto.OpHealth:
		h := s.health()
		return h, nil, nil
	case proto.OpPorts:
		ports, err := listPorts(s.sys.procRoot)
		return ports, nil, err
	case proto.OpAuthorizeKey:
		if req.Key == "" {
			return nil, nil, errors.New("missing key")
		}
		if err := s.keys.add(req.Key); err != nil {
			return nil, nil, err
		}
		s.log.Info("authorized key added")
		return nil, nil, nil
	case proto.OpPoweroff:
		if s.cfg.Poweroff == nil {
			return nil, nil, errors.New("poweroff is not available in this agent")
		}
		s.log.Info("poweroff requested")
		return nil, s.cfg.Poweroff, nil
	case proto.OpSetTime:
		return nil, nil, s.setTime(req.TimeUnixNano)
	case proto.OpReidentify:
		return nil, nil, s.reidentify(req.Identity)
	case proto.OpReseed:
		return nil, nil, s.reseed(req.Entropy)
	case proto.OpDiskUsage:
		du, err := s.diskUsage()
		return du, nil, err
	case "":
		return nil, nil, errors.New("missing op")
	default:
		return nil, nil, fmt.Errorf("unknown op %q", req.Op)
	}
}
