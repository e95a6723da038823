package driver

import (
	"context"
	"sync"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// eventer fans task events out to Nomad's subscribers. A subscriber that
// does not keep up misses events rather than blocking a task.
type eventer struct {
	mu   sync.Mutex
	subs map[chan *drivers.TaskEvent]struct{}
}

func newEventer() *eventer { return &eventer{subs: map[chan *drivers.TaskEvent]struct{}{}} }

func (e *eventer) subscribe(ctx, pluginCtx context.Context) <-chan *drivers.TaskEvent {
	ch := make(chan *drivers.TaskEvent, 16)
	e.mu.Lock()
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-pluginCtx.Done():
		}
		e.mu.Lock()
		delete(e.subs, ch)
		close(ch)
		e.mu.Unlock()
	}()
	return ch
}

func (e *eventer) emit(ev *drivers.TaskEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}
