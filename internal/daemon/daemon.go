// Package daemon runs bangerd: it takes the state lock, opens the store,
// wires the services, and serves the API on the Unix socket until told to
// stop. Stopping the daemon never stops VMs: they run detached and are
// re-adopted at the next start.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"banger/internal/paths"
	"banger/internal/server"
	"banger/internal/store"
)

// Options configure a daemon.
type Options struct {
	Socket string
	// SocketGroup is the group that may use the socket (mode 0660); empty
	// means DefaultSocketGroup when it exists, else owner only (0600).
	SocketGroup string
	StateDir    string
	// AgentPath is the banger-agent binary delivered to guests; empty means
	// "banger-agent next to this executable".
	AgentPath string
	// Stderr receives log lines too (besides the log file).
	Stderr io.Writer
	// Accel is auto, kvm or tcg.
	Accel string
	// VMM is "qemu" (default) or "firecracker".
	VMM   string
	Debug bool
	// Limits bound callers' connections (DefaultLimits when zero).
	Limits Limits
	// MaxDiskBytes caps one VM disk (0: vm.DefaultMaxDiskSize); requests
	// must also fit the free space of the state filesystem.
	MaxDiskBytes int64
	// MaxImageBytes caps the expanded size of an imported or pulled image
	// (0: image.DefaultMaxImageSize), and the free space bounds it too.
	MaxImageBytes int64
	// SecretsKey is the secrets vault's key file; "" means
	// STATE/secrets/key (created on first start).
	SecretsKey string
}

// Daemon is a running bangerd.
type Daemon struct {
	opts   Options
	state  paths.State
	log    *slog.Logger
	store  *store.Store
	stop   context.CancelFunc
	closer []func()
}

// Run starts the daemon and blocks until ctx ends or a shutdown request.
func Run(ctx context.Context, opts Options) error {
	state := paths.State{Dir: opts.StateDir}
	if err := os.MkdirAll(state.Dir, stateDirMode); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	lock, err := lockState(state.Lock())
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := secureState(state); err != nil {
		return err
	}
	// Take the socket before setting anything up, so that a daemon refused
	// here (another one answers on it) has not touched the host network.
	// Requests that arrive before Serve wait in the listen backlog.
	ln, access, err := listen(opts.Socket, opts.SocketGroup)
	if err != nil {
		return err
	}
	defer ln.Close()

	log, logFile, err := openLog(state, opts)
	if err != nil {
		return err
	}
	defer logFile.Close()

	st, err := store.Open(ctx, state.DB())
	if err != nil {
		return err
	}
	defer st.Close()

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	d := &Daemon{opts: opts, state: state, log: log, store: st, stop: stop}
	svc, err := d.services(ctx)
	if err != nil {
		return err
	}
	defer func() {
		for i := len(d.closer) - 1; i >= 0; i-- {
			d.closer[i]()
		}
	}()
	svc.Shutdown = stop

	srv := newHTTPServer(server.New(svc, log), opts.Limits, log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(limitConns(ln, opts.Limits, log)) }()
	log.Info("bangerd listening", "socket", opts.Socket, "access", access, "state", state.Dir, "pid", os.Getpid())

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	log.Info("bangerd stopping: finishing in-flight requests (running VMs keep running)")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("in-flight requests did not finish in time", "err", err)
		srv.Close()
	}
	log.Info("bangerd stopped")
	return nil
}

func openLog(state paths.State, opts Options) (*slog.Logger, *os.File, error) {
	if err := os.MkdirAll(filepath.Dir(state.Log()), 0o700); err != nil {
		return nil, nil, fmt.Errorf("create log folder: %w", err)
	}
	f, err := os.OpenFile(state.Log(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open log %s: %w", state.Log(), err)
	}
	var w io.Writer = f
	if opts.Stderr != nil {
		w = io.MultiWriter(f, opts.Stderr)
	}
	level := slog.LevelInfo
	if opts.Debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), f, nil
}
