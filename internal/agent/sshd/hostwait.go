package sshd

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"
)

// hostIdleWait bounds the wait for the host to connect to the control port
// when the kernel signals connections (a safety net: it should never be
// what wakes the loop).
const hostIdleWait = 30 * time.Second

// hostWaiter waits, between sessions on the control port, until the host
// end may have connected.
type hostWaiter interface {
	wait(ctx context.Context)
	close()
}

// newHostWaiter asks the kernel for SIGIO on f when the host end of the
// port connects or sends data (virtio_console's fasync: it signals every
// change of the host's connection), so the agent sleeps while no host is
// connected; reading a port with no host returns end of file at once, so
// without the signal it could only poll. When the device cannot signal,
// the waiter polls every controlRetry.
func newHostWaiter(f *os.File) (hostWaiter, error) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGIO)
	rc, err := f.SyscallConn()
	if err != nil {
		signal.Stop(ch)
		return pollWaiter{}, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setAsync(int(fd)) }); err != nil {
		serr = err
	}
	if serr != nil {
		signal.Stop(ch)
		return pollWaiter{}, serr
	}
	return &sigioWaiter{ch: ch, idle: hostIdleWait}, nil
}

// setAsync directs fd's SIGIO at this process and turns it on.
func setAsync(fd int) error {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETOWN, os.Getpid()); err != nil {
		return fmt.Errorf("F_SETOWN: %w", err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("F_GETFL: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_ASYNC); err != nil {
		return fmt.Errorf("F_SETFL O_ASYNC: %w", err)
	}
	return nil
}

type sigioWaiter struct {
	ch   chan os.Signal
	idle time.Duration
}

// wait returns on the next SIGIO (one that came since the last wait
// counts: the channel keeps it), at ctx's end or after w.idle.
func (w *sigioWaiter) wait(ctx context.Context) {
	t := time.NewTimer(w.idle)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-w.ch:
	case <-t.C:
	}
}

func (w *sigioWaiter) close() { signal.Stop(w.ch) }

type pollWaiter struct{}

func (pollWaiter) wait(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(controlRetry):
	}
}

func (pollWaiter) close() {}
