package tarstream

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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
	tw := tar.NewWriter(w)
	buf := make([]byte, 64<<10)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
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
		size := hdr.Size
		if unchanged != nil && info.Mode().IsRegular() && isUnchanged(info, unchanged) {
			hdr.PAXRecords = map[string]string{proto.PAXUnchanged: strconv.FormatInt(hdr.Size, 10)}
			hdr.Size = 0
			return tw.WriteHeader(hdr)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.CopyBuffer(tw, io.LimitReader(f, size), buf)
		if err == nil && n != size {
			err = fmt.Errorf("shrank from %d to %d bytes while being read", size, n)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

// isUnchanged reports whether a regular file is as the extraction described
// by u left it. Only this guest's own edits can be hidden by a wrong clock
// or a forged time stamp: the host then reports the prepared content.
func isUnchanged(fi fs.FileInfo, u *proto.Unchanged) bool {
	ctime, ok := changeTime(fi)
	return ok && fi.ModTime().UnixNano() == u.MtimeUnixNano && ctime < u.CtimeUnixNano
}
