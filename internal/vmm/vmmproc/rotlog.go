package vmmproc

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// RotatingLog is a log file with a size cap: once PATH holds Max bytes it is
// renamed PATH.1 (PATH.1 to PATH.2, and so on up to Keep files) and a new
// PATH is started. At most (Keep+1)*Max bytes are ever on disk. It is safe
// for concurrent use.
type RotatingLog struct {
	mu   sync.Mutex
	path string
	max  int64
	keep int
	f    *os.File
	size int64
}

// Log files are root's alone, like the rest of a VM folder.
const rotLogMode = 0o600

// OpenRotatingLog opens path for appending with a cap of max bytes per file
// and keep rotated files (at least 1). With fresh, path and its rotated files
// are removed first (a new boot starts a new log).
func OpenRotatingLog(path string, max int64, keep int, fresh bool) (*RotatingLog, error) {
	if max <= 0 || keep < 1 {
		return nil, fmt.Errorf("rotating log %s: cap %d bytes and %d files: both must be positive", path, max, keep)
	}
	l := &RotatingLog{path: path, max: max, keep: keep}
	if fresh {
		for i := 0; i <= keep; i++ {
			if err := os.Remove(l.name(i)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("rotating log: %w", err)
			}
		}
	}
	if err := l.open(os.O_APPEND); err != nil {
		return nil, err
	}
	return l, nil
}

// name is path for i == 0, path.i otherwise.
func (l *RotatingLog) name(i int) string {
	if i == 0 {
		return l.path
	}
	return l.path + "." + strconv.Itoa(i)
}

func (l *RotatingLog) open(mode int) error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|mode, rotLogMode)
	if err != nil {
		return fmt.Errorf("rotating log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("rotating log: %w", err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, rotating as often as needed; it never leaves more than
// the cap in one file. After an error the rest of p is dropped; the next
// Write tries again.
func (l *RotatingLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	done := 0
	for done < len(p) {
		if l.f == nil {
			if err := l.open(os.O_APPEND); err != nil {
				return done, err
			}
		}
		if l.size >= l.max {
			if err := l.rotate(); err != nil {
				return done, err
			}
		}
		chunk := p[done:]
		if room := l.max - l.size; int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		n, err := l.f.Write(chunk)
		l.size += int64(n)
		done += n
		if err != nil {
			return done, fmt.Errorf("rotating log: %w", err)
		}
	}
	return done, nil
}

// rotate shifts the files by one and starts an empty path.
func (l *RotatingLog) rotate() error {
	l.f.Close()
	l.f = nil
	for i := l.keep; i > 0; i-- {
		err := os.Rename(l.name(i-1), l.name(i))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotating log: %w", err)
		}
	}
	return l.open(os.O_TRUNC)
}

// Close closes the current file.
func (l *RotatingLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Drain copies r into l until r ends (EOF or a read error), then closes l.
// Write errors (a full disk) drop the data and are reported to warn once,
// and copying goes on, so the writer on the other side never blocks on l.
func (l *RotatingLog) Drain(r io.Reader, warn func(error)) {
	defer l.Close()
	buf := make([]byte, 32<<10)
	warned := false
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := l.Write(buf[:n]); werr != nil && !warned && warn != nil {
				warn(werr)
				warned = true
			}
		}
		if err != nil {
			return
		}
	}
}
