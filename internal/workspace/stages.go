package workspace

import "time"

// stageClock records how long each stage of an operation took, for the
// operation's log line (so a slow prepare or export says where its time
// went).
type stageClock struct {
	last  time.Time
	attrs []any
}

func newStageClock() *stageClock { return &stageClock{last: time.Now()} }

// mark ends the stage called name.
func (c *stageClock) mark(name string) {
	now := time.Now()
	c.attrs = append(c.attrs, name+"_ms", now.Sub(c.last).Milliseconds())
	c.last = now
}
