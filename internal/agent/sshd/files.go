package sshd

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"

	"banger/internal/agent/proto"
	"banger/internal/agent/tarstream"
)

// The workspace ops (proto.OpProbe, OpExtract, OpArchive, OpRemove) move
// files for the host's workspace service.

// opPath checks the path of a workspace op: absolute, clean, not "/".
func opPath(p string) (string, error) {
	if p == "" || !path.IsAbs(p) {
		return "", fmt.Errorf("path %.200q is not absolute", p)
	}
	if c := path.Clean(p); c != p || c == "/" {
		return "", fmt.Errorf("path %.200q is not a clean path below /", p)
	}
	return p, nil
}

// sessionPath is the PATH sessions get, where tools such as git are found.
func (s *server) sessionPath() string {
	return envValue(sessionEnv(s.sys.home, "", "", s.cfg.Env, nil), "PATH")
}

// probe says whether p is absent, an empty directory or anything else,
// and whether the guest has git.
func (s *server) probe(p string) (proto.Probe, error) {
	_, err := lookPath("git", s.sessionPath())
	state, serr := tarstream.PathState(p)
	return proto.Probe{State: state, Git: err == nil}, serr
}

// extract replaces p by the tar stream r (read to its end).
func (s *server) extract(req proto.Request, r io.Reader) (proto.Extracted, error) {
	sum, err := tarstream.Replace(r, req.Path)
	if err == nil && req.GitRefresh {
		s.refreshGit(req.Path)
	}
	return sum, err
}

// refreshGit refreshes the git index of dir, so the first git status is
// fast; best effort.
func (s *server) refreshGit(dir string) {
	if _, err := os.Lstat(filepath.Join(dir, ".git")); err != nil {
		return
	}
	gitBin, err := lookPath("git", s.sessionPath())
	if err != nil {
		return
	}
	cmd := &exec.Cmd{Path: gitBin, Args: []string{"git", "update-index", "-q", "--refresh"}, Dir: dir,
		Env: sessionEnv(s.sys.home, "", "", s.cfg.Env, nil)}
	wait, err := s.sys.start(cmd)
	if err != nil {
		s.log.Debug("git refresh", "dir", dir, "err", err)
		return
	}
	wait()
}

// serveStream runs a workspace op that owns the channel: extract reads a
// tar stream after the request, archive writes one after the answer. It
// returns the channel's exit status: 1 when an archive could not be
// completed (said on stderr; the host must not take the stream as whole).
func (s *server) serveStream(req proto.Request, r io.Reader, w, stderr io.Writer) (int, error) {
	p, err := opPath(req.Path)
	if err != nil {
		return 0, writeResponse(w, req.Op, nil, err)
	}
	req.Path = p
	if req.Op == proto.OpExtract {
		sum, err := s.extract(req, r)
		return 0, writeResponse(w, req.Op, sum, err)
	}
	fi, err := os.Stat(p)
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", p)
	}
	if err != nil {
		return 0, writeResponse(w, req.Op, nil, err)
	}
	if err := writeResponse(w, req.Op, nil, nil); err != nil {
		return 1, err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	err = tarstream.WriteChanged(bw, p, req.Exclude, req.Unchanged)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		fmt.Fprintf(stderr, "archive %s: %v\n", p, err)
		return 1, nil
	}
	return 0, nil
}
