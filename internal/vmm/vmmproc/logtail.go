package vmmproc

import (
	"os"
	"strings"
)

// LogTail is the end (at most 1 KiB) of a VMM's log file on one line, its
// non-blank lines joined by "; ", or "" when the file is missing or empty.
func LogTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const max = 1024
	if len(data) > max {
		data = data[len(data)-max:]
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}
