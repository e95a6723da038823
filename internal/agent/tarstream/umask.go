package tarstream

import (
	"bufio"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
)

// processUmask returns the process's file mode creation mask, read once
// from /proc/self/status (the umask system call would have to set it to
// read it, racing other threads' file creations).
var processUmask = sync.OnceValues(func() (fs.FileMode, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return fs.FileMode(m) & fs.ModePerm, err == nil
		}
	}
	return 0, false
})
