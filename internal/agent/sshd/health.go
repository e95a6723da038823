package sshd

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/agent/proto"
)

// saneClockUnix (2024-01-01) is a floor for a set clock: a guest clock
// before it was never set.
const saneClockUnix = 1704067200

// setTime sets the guest clock to the host's time (nanoseconds since the
// Unix epoch). A time before saneClockUnix is refused.
func (s *server) setTime(unixNano int64) error {
	if unixNano/int64(time.Second) <= saneClockUnix {
		return fmt.Errorf("refusing to set the clock to %d ns since the epoch: before %s",
			unixNano, time.Unix(saneClockUnix, 0).UTC().Format(time.DateOnly))
	}
	t := time.Unix(0, unixNano)
	before := time.Now()
	if err := s.sys.setClock(t); err != nil {
		return err
	}
	s.log.Info("clock set from host", "time", t.UTC().Format(time.RFC3339Nano), "moved", t.Sub(before).Round(time.Millisecond))
	return nil
}

// setSystemClock sets CLOCK_REALTIME (needs CAP_SYS_TIME).
func setSystemClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("set clock: %w", err)
	}
	return nil
}

// health runs the agent's health checks.
func (s *server) health() proto.Health {
	now := time.Now()
	h := proto.Health{TimeUnixNano: now.UnixNano(), Uptime: s.uptime()}
	h.Checks = append(h.Checks, proto.Check{Name: proto.CheckAgent, OK: true, Detail: "serving ssh"})
	// The two disks' writes and syncs are independent: run them at once.
	work := make(chan proto.Check, 1)
	go func() { work <- writableCheck(proto.CheckWorkWritable, s.cfg.Disks.Work) }()
	h.Checks = append(h.Checks, writableCheck(proto.CheckRootWritable, s.cfg.Disks.Root))
	h.Checks = append(h.Checks, <-work)
	clock := proto.Check{Name: proto.CheckClock, OK: now.Unix() > saneClockUnix, Detail: now.UTC().Format(time.RFC3339Nano)}
	if !clock.OK {
		clock.Detail = "clock not set: " + clock.Detail
	}
	h.Checks = append(h.Checks, clock)
	h.OK = true
	for _, c := range h.Checks {
		h.OK = h.OK && c.OK
	}
	h.ElapsedNanos = int64(time.Since(now))
	return h
}

// writableCheck creates, writes, syncs and removes a file directly in dir.
func writableCheck(name, dir string) proto.Check {
	c := proto.Check{Name: name}
	if dir == "" {
		c.Detail = "no path configured"
		return c
	}
	f, err := os.CreateTemp(dir, proto.HealthFilePrefix+"*")
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	_, werr := f.WriteString("banger health check\n")
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	for _, err := range []error{werr, cerr, rerr} {
		if err != nil {
			c.Detail = fmt.Sprintf("write %s: %v", f.Name(), err)
			return c
		}
	}
	c.OK, c.Detail = true, dir+" is writable"
	return c
}

// uptime reads the system uptime, falling back to the agent's own.
func (s *server) uptime() float64 {
	b, err := os.ReadFile(s.sys.procRoot + "/uptime")
	if fields := strings.Fields(string(b)); err == nil && len(fields) > 0 {
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			return v
		}
	}
	return time.Since(s.started).Seconds()
}

// diskUsage reports statfs of the overlay (or root) and the work disk.
func (s *server) diskUsage() (proto.DiskUsage, error) {
	rootPath := s.cfg.Disks.Root
	if s.cfg.Disks.Overlay != "" {
		rootPath = s.cfg.Disks.Overlay
	}
	root, err := statDisk(rootPath)
	if err != nil {
		return proto.DiskUsage{}, err
	}
	work, err := statDisk(s.cfg.Disks.Work)
	if err != nil {
		return proto.DiskUsage{}, err
	}
	return proto.DiskUsage{Root: root, Work: work}, nil
}

func statDisk(path string) (proto.DiskStat, error) {
	if path == "" {
		return proto.DiskStat{}, fmt.Errorf("disk usage: no path configured")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return proto.DiskStat{}, fmt.Errorf("disk usage: statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return proto.DiskStat{
		Path:       path,
		SizeBytes:  st.Blocks * bs,
		UsedBytes:  (st.Blocks - st.Bfree) * bs,
		AvailBytes: st.Bavail * bs,
	}, nil
}
