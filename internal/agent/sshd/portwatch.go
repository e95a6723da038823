package sshd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"banger/internal/agent/proto"
)

// watchInterval is how often the agent reads the guest's socket tables
// while a host watches them (a local read: nothing crosses to the host
// unless something changed).
const watchInterval = 250 * time.Millisecond

const watchSubsystem = proto.WatchSubsystem

// watchPorts streams the guest's listening TCP sockets on rw: a snapshot
// at once and after every change, until the host closes the channel.
func (s *server) watchPorts(rw io.ReadWriter) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, rw) // the host sends nothing; EOF ends the watch
		cancel()
	}()
	enc := json.NewEncoder(rw)
	var last []proto.Listener
	first := true
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		cur, err := tcpListeners(s.sys.procRoot)
		if err != nil {
			return err
		}
		if first || !slices.Equal(cur, last) {
			if err := enc.Encode(proto.ListenSnapshot{Listeners: cur}); err != nil {
				return err
			}
			last, first = cur, false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// tcpListeners reads the listening TCP sockets, sorted, without repeats,
// at most proto.MaxWatchListeners.
func tcpListeners(procRoot string) ([]proto.Listener, error) {
	var out []proto.Listener
	seen := map[proto.Listener]bool{}
	for _, name := range []string{"tcp", "tcp6"} {
		es, err := readSocketTable(filepath.Join(procRoot, "net", name), "tcp")
		if errors.Is(err, fs.ErrNotExist) && name == "tcp6" {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			l := proto.Listener{BindAddress: e.addr.String(), Port: e.port}
			if !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].BindAddress < out[j].BindAddress
	})
	if len(out) > proto.MaxWatchListeners {
		out = out[:proto.MaxWatchListeners]
	}
	return out, nil
}
