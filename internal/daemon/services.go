package daemon

import (
	"context"

	"banger/internal/server"
)

// services wires the capabilities this daemon has. A nil service makes its
// routes answer 501 naming what is missing.
func (d *Daemon) services(ctx context.Context) (server.Services, error) {
	return server.Services{}, nil
}
