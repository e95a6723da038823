package tarstream

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"banger/internal/agent/proto"
)

// Write writes a tar of dir's contents to w, names relative to dir.
// Symlinks are stored as symlinks, never followed; entries whose base name
// matches one of the exclude patterns (filepath.Match) are left out with
// everything below them. Sockets and other special files are skipped.
func Write(w io.Writer, dir string, excludes []string) error {
	return WriteChanged(w, dir, excludes, nil)
}

// Small files are read ahead by prefetchers while earlier entries are
// written: in an emulated guest each open and read is slow, and a second
// vCPU can do them meanwhile. At most prefetchQueue entries wait, so at
// most prefetchQueue*prefetchMax bytes are held.
const (
	prefetchers   = 2
	prefetchQueue = 64
	prefetchMax   = 128 << 10
)

// archiveEntry is one archive member on its way from the walk to the writer.
type archiveEntry struct {
	hdr  *tar.Header
	path string
	size int64  // content to copy (regular files only)
	data []byte // the content when read ahead
	err  error
	done chan struct{} // closed once data and err are set
}

// WriteChanged is Write, but with unchanged set a regular file still as an
// extraction left it (see proto.Unchanged) is written as a header only:
// size 0 and its real size in the PAX record proto.PAXUnchanged.
func WriteChanged(w io.Writer, dir string, excludes []string, unchanged *proto.Unchanged) error {
	for _, p := range excludes {
		if _, err := filepath.Match(p, ""); err != nil {
			return fmt.Errorf("archive: bad exclude pattern %q: %w", p, err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("archive: %s is not a directory", dir)
	}
	stop := make(chan struct{})
	queue := make(chan *archiveEntry, prefetchQueue)
	work := make(chan *archiveEntry, prefetchQueue)
	go func() {
		// A failed walk ends the queue with its error, so the writer
		// never finishes the archive (its end marker would make a cut
		// archive look whole).
		if err := walk(dir, excludes, unchanged, queue, work, stop); !errors.Is(err, errStopped) && err != nil {
			failed := &archiveEntry{err: err, done: make(chan struct{})}
			close(failed.done)
			select {
			case queue <- failed:
			case <-stop:
			}
		}
		close(queue)
		close(work)
	}()
	var readers sync.WaitGroup
	for range prefetchers {
		readers.Go(func() {
			for e := range work {
				e.data, e.err = readAhead(e.path, e.size)
				close(e.done)
			}
		})
	}
	err = writeEntries(w, queue)
	close(stop)
	for range queue { // let the walk end
	}
	readers.Wait()
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

var errStopped = errors.New("stopped")

// walk sends the entries of dir, in walk order, to queue, and those whose
// content is read ahead also to work.
func walk(dir string, excludes []string, unchanged *proto.Unchanged, queue, work chan<- *archiveEntry, stop <-chan struct{}) error {
	send := func(ch chan<- *archiveEntry, e *archiveEntry) error {
		select {
		case ch <- e:
			return nil
		case <-stop:
			return errStopped
		}
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		for _, pat := range excludes {
			if ok, _ := filepath.Match(pat, d.Name()); ok {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular(), info.IsDir():
		default:
			return nil // sockets, devices, fifos
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		// Whole-second times and no access or change time: most entries
		// then fit one 512-byte header, with no PAX header block (which
		// doubled the archive of a tree of small files).
		hdr.Uname, hdr.Gname = "", ""
		hdr.ModTime = hdr.ModTime.Truncate(time.Second)
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		hdr.Format = tar.FormatUnknown
		e := &archiveEntry{hdr: hdr, path: p, done: make(chan struct{})}
		if info.Mode().IsRegular() {
			if unchanged != nil && isUnchanged(info, unchanged) {
				hdr.PAXRecords = map[string]string{proto.PAXUnchanged: strconv.FormatInt(hdr.Size, 10)}
				hdr.Size = 0
			}
			e.size = hdr.Size
		}
		if e.size > 0 && e.size <= prefetchMax {
			if err := send(work, e); err != nil {
				return err
			}
		} else {
			close(e.done)
		}
		return send(queue, e)
	})
}

// readAhead reads the size bytes of the regular file p.
func readAhead(p string, size int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, size)
	n, err := io.ReadFull(f, data)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = fmt.Errorf("shrank from %d to %d bytes while being read", size, n)
	}
	return data, err
}

// writeEntries writes the entries of queue, in order, to w.
func writeEntries(w io.Writer, queue <-chan *archiveEntry) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 64<<10)
	for e := range queue {
		<-e.done
		if e.err != nil && e.hdr == nil {
			return e.err // the walk failed
		}
		if e.err != nil {
			return fmt.Errorf("%s: %w", e.path, e.err)
		}
		if err := tw.WriteHeader(e.hdr); err != nil {
			return err
		}
		if e.data != nil {
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
			continue
		}
		if e.size > 0 {
			if err := copyFile(tw, e.path, e.size, buf); err != nil {
				return fmt.Errorf("%s: %w", e.path, err)
			}
		}
	}
	return tw.Close()
}

// copyFile copies the size bytes of the regular file p to w.
func copyFile(w io.Writer, p string, size int64, buf []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyBuffer(w, io.LimitReader(f, size), buf)
	if err == nil && n != size {
		err = fmt.Errorf("shrank from %d to %d bytes while being read", size, n)
	}
	return err
}

// isUnchanged reports whether a regular file is as the extraction described
// by u left it. Only this guest's own edits can be hidden by a wrong clock
// or a forged time stamp: the host then reports the prepared content.
func isUnchanged(fi fs.FileInfo, u *proto.Unchanged) bool {
	ctime, ok := changeTime(fi)
	return ok && fi.ModTime().UnixNano() == u.MtimeUnixNano && ctime < u.CtimeUnixNano
}
