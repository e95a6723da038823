package sshd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

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
	if name == proto.WatchSubsystem {
		if err := ss.srv.watchPorts(ss.ch); err != nil {
			ss.log.Debug("port watch ended", "err", err)
		}
		return exitInfo{code: 0}
	}
	code, err := ss.srv.serveAgent(ss.ch, ss.ch, ss.ch.Stderr())
	if err != nil {
		ss.log.Debug("agent session ended", "err", err)
	}
	return exitInfo{code: code}
}

// keepOpen is a stream whose Close does nothing.
type keepOpen struct{ io.ReadWriter }

func (keepOpen) Close() error { return nil }

// serveAgent answers newline-delimited JSON requests from r on w until r
// ends, or until a workspace op that owns the channel (extract, archive)
// is done. It returns the channel's exit status.
func (s *server) serveAgent(r io.Reader, w, stderr io.Writer) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readRequest(br)
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read agent request: %w", err)
		}
		var req proto.Request
		if err := json.Unmarshal(line, &req); err != nil {
			if err := writeResponse(w, "", nil, fmt.Errorf("decode request: %v", err)); err != nil {
				return 0, err
			}
			continue
		}
		if req.Op == proto.OpExtract || req.Op == proto.OpArchive {
			return s.serveStream(req, br, w, stderr)
		}
		result, after, err := s.agentOp(req)
		if err := writeResponse(w, req.Op, result, err); err != nil {
			return 0, err
		}
		if after != nil {
			go after()
		}
	}
}

// readRequest reads one request line (at most maxRequestLine bytes; a last
// line may lack its newline); io.EOF when no line is left.
func readRequest(br *bufio.Reader) ([]byte, error) {
	line, err := proto.ReadLine(br, maxRequestLine)
	if errors.Is(err, io.EOF) && len(line) > 0 {
		return line, nil
	}
	if err != nil {
		return nil, err
	}
	return line[:len(line)-1], nil
}

// writeResponse writes one answer line: the op's result, or its error.
func writeResponse(w io.Writer, op string, result any, opErr error) error {
	var resp proto.Response
	switch {
	case opErr != nil && op == "":
		resp.Error = opErr.Error()
	case opErr != nil:
		resp.Error = fmt.Sprintf("%s: %v", op, opErr)
	case result != nil:
		raw, err := json.Marshal(result)
		if err != nil {
			resp.Error = fmt.Sprintf("%s: encode result: %v", op, err)
			break
		}
		resp.OK, resp.Result = true, raw
	default:
		resp.OK = true
	}
	line, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("write agent response: %w", err)
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write agent response: %w", err)
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
	case proto.OpSecrets:
		return nil, nil, s.setSecrets(req.Secrets)
	case proto.OpReseed:
		return nil, nil, s.reseed(req.Entropy)
	case proto.OpDiskUsage:
		du, err := s.diskUsage()
		return du, nil, err
	case proto.OpProbe:
		p, err := opPath(req.Path)
		if err != nil {
			return nil, nil, err
		}
		res, err := s.probe(p)
		return res, nil, err
	case proto.OpRemove:
		p, err := opPath(req.Path)
		if err != nil {
			return nil, nil, err
		}
		return nil, nil, os.RemoveAll(p)
	case "":
		return nil, nil, errors.New("missing op")
	default:
		return nil, nil, fmt.Errorf("unknown op %q", req.Op)
	}
}
