package server

import (
	"os"

	"banger/internal/api"
	"banger/internal/buildinfo"
)

func (s *Server) ping(c *call) (any, error) {
	if _, err := decode[api.Empty](c); err != nil {
		return nil, err
	}
	res := api.PingResult{Status: "ok", PID: os.Getpid(), Version: buildinfo.Version,
		Commit: buildinfo.Commit, BuiltAt: buildinfo.BuiltAt}
	if s.svc.Accel != nil {
		res.Accel, res.AccelReason = s.svc.Accel()
	}
	return res, nil
}

func (s *Server) shutdown(c *call) (any, error) {
	if _, err := decode[api.Empty](c); err != nil {
		return nil, err
	}
	if s.svc.Shutdown == nil {
		return nil, missing("daemon shutdown")
	}
	c.after = s.svc.Shutdown
	return api.ShutdownResult{Status: "stopping"}, nil
}
