package sshd

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

var (
	hupOnce sync.Once
	hupSink = make(chan os.Signal, 1)
)

// defaultHangupForSessions makes the processes sessions start get SIGHUP at
// its default action (terminate), which closing a session relies on. A
// signal the server ignores stays ignored across exec (as when the agent,
// or a test, was started under nohup); a signal it catches is reset to the
// default. So each server catches SIGHUP itself, and drops it: it has no
// use for it.
func defaultHangupForSessions() {
	hupOnce.Do(func() {
		go func() {
			for range hupSink {
			}
		}()
	})
	signal.Notify(hupSink, syscall.SIGHUP)
}
