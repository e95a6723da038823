package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"banger/internal/api"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress renders api.ProgressEvents on stderr: byte bars with speed on a
// TTY (mpb), plain lines otherwise.
type progress struct {
	w     io.Writer
	start time.Time
	mu    sync.Mutex
	// plain mode
	lastKey string
	lastPct int64
	// tty mode
	p    *mpb.Progress
	bars map[string]*mpb.Bar
}

func (a *app) newProgress() *progress {
	pr := &progress{w: a.stderr, start: time.Now(), bars: map[string]*mpb.Bar{}}
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pr.p = mpb.New(mpb.WithOutput(a.stderr), mpb.WithWidth(40))
	}
	return pr
}

// event handles one progress event.
func (pr *progress) event(ev api.ProgressEvent) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	ev.Phase, ev.Detail = safe(ev.Phase), safe(ev.Detail) // registries and guests name things too
	key := ev.Phase + " " + ev.Detail
	if pr.p != nil && ev.Total > 0 {
		b, ok := pr.bars[key]
		if !ok {
			b = pr.p.AddBar(ev.Total,
				mpb.PrependDecorators(decor.Name(trunc(key, 30), decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"),
					decor.Name(" "), decor.AverageSpeed(decor.SizeB1024(0), "% .1f")))
			pr.bars[key] = b
		}
		b.SetCurrent(ev.Current)
		return
	}
	elapsed := time.Since(pr.start).Round(100 * time.Millisecond)
	if ev.Total > 0 {
		pct := ev.Current * 100 / ev.Total
		if key == pr.lastKey && pct/25 == pr.lastPct/25 && ev.Current != ev.Total {
			return
		}
		pr.lastKey, pr.lastPct = key, pct
		fmt.Fprintf(pr.w, "[%s] %s: %s %d%% (%s of %s)\n", elapsed, ev.Phase, ev.Detail, pct, humanBytes(ev.Current), humanBytes(ev.Total))
		return
	}
	if key == pr.lastKey {
		return
	}
	pr.lastKey = key
	if ev.Detail != "" {
		fmt.Fprintf(pr.w, "[%s] %s: %s\n", elapsed, ev.Phase, ev.Detail)
	} else {
		fmt.Fprintf(pr.w, "[%s] %s\n", elapsed, ev.Phase)
	}
}

// done finishes the bars.
func (pr *progress) done() {
	if pr.p == nil {
		return
	}
	pr.mu.Lock()
	for _, b := range pr.bars {
		if !b.Completed() {
			b.Abort(false)
		}
	}
	pr.mu.Unlock()
	pr.p.Wait()
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
