package tarstream

import (
	"io/fs"
	"syscall"
)

// changeTime returns a file's change time (ctime) in nanoseconds since the
// epoch, when the file system reports one.
func changeTime(fi fs.FileInfo) (int64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Ctim.Nano(), true
}
