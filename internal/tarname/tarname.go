// Package tarname checks the member names of tar archives banger did not
// write (image layers, OCI archives, the guest's and the host's streams to
// each other): one rule for every reader.
package tarname

import (
	"fmt"
	"path"
	"strings"
)

// Clean checks a member name (or a hard link's target) and returns it
// slash-separated, cleaned and relative to the archive's root ("." for the
// root itself). Empty and absolute names, names with a NUL byte and names
// with a ".." component anywhere are refused, so a cleaned name never
// leaves the root.
func Clean(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("empty name in archive")
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute path %.200q in archive refused", name)
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("path %.200q in archive holds a NUL byte", name)
	}
	for part := range strings.SplitSeq(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("path %.200q in archive leaves its root (..)", name)
		}
	}
	return path.Clean(name), nil
}
