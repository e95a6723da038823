package vm

import "sync"

// opWatch tells waiters that some create operation changed: changed
// returns a channel that the next notify closes.
type opWatch struct {
	mu sync.Mutex
	ch chan struct{}
}

func (w *opWatch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *opWatch) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}
