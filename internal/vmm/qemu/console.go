package qemu

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"banger/internal/vmm/vmmproc"
)

// consoleDrainWait bounds how long Quit and Wait wait, once QEMU is gone,
// for the serial reader to write the console's last bytes.
const consoleDrainWait = 3 * time.Second

// console is one reader copying a VM's serial socket into its rotating log
// until QEMU closes the socket.
type console struct{ done chan struct{} }

// writeSerialTarget records the serial log's path in runDir, so that the
// console can be re-attached after a daemon restart.
func writeSerialTarget(runDir, logPath string) error {
	if err := os.WriteFile(filepath.Join(runDir, SerialTarget), []byte(logPath+"\n"), 0o600); err != nil {
		return fmt.Errorf("serial log: %w", err)
	}
	return nil
}

// attachConsole connects to runDir's serial socket and drains it into the
// serial log (a new log when fresh) in the background. It does nothing when
// a reader is already attached or the VM has no serial console.
func (b *Backend) attachConsole(runDir string, fresh bool) error {
	data, err := os.ReadFile(filepath.Join(runDir, SerialTarget))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("serial console: %w", err)
	}
	logPath := strings.TrimSpace(string(data))
	if !filepath.IsAbs(logPath) {
		return fmt.Errorf("serial console: bad log path %q in %s", logPath, SerialTarget)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.consoles[runDir]; ok {
		select {
		case <-c.done:
		default:
			return nil
		}
	}
	conn, err := net.DialTimeout("unix", filepath.Join(runDir, SerialSocket), qmpTimeout)
	if err != nil {
		return fmt.Errorf("serial console: %w", err)
	}
	log, err := vmmproc.OpenRotatingLog(logPath, b.serialMax, b.serialKeep, fresh)
	if err != nil {
		conn.Close()
		return fmt.Errorf("serial console: %w", err)
	}
	c := &console{done: make(chan struct{})}
	b.consoles[runDir] = c
	go func() {
		log.Drain(conn, func(err error) { b.log.Warn("qemu: serial log: output dropped", "log", logPath, "err", err) })
		conn.Close()
		close(c.done)
		b.mu.Lock()
		if b.consoles[runDir] == c {
			delete(b.consoles, runDir)
		}
		b.mu.Unlock()
	}()
	return nil
}

// consoleDrained waits (at most d) for runDir's serial reader to finish,
// which it does once QEMU has exited and its last output is in the log.
func (b *Backend) consoleDrained(runDir string, d time.Duration) {
	b.mu.Lock()
	c, ok := b.consoles[runDir]
	b.mu.Unlock()
	if !ok {
		return
	}
	select {
	case <-c.done:
	case <-time.After(d):
		b.log.Warn("qemu: serial reader still busy after the vmm exited", "run_dir", runDir)
	}
}
