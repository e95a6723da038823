package vmmproc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ReadPIDFile reads the pid in path. A missing file is an fs.ErrNotExist
// error; content that is not a positive number is a "bad pidfile" error.
func ReadPIDFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pidfile %s: %q", path, bytes.TrimSpace(data))
	}
	return pid, nil
}

// WritePIDFile writes pid to path atomically (readers never see a partial
// file), through the temporary file path+".tmp".
func WritePIDFile(path string, pid int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o640); err != nil {
		return fmt.Errorf("write pidfile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write pidfile: %w", err)
	}
	return nil
}
