package image

import (
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

func requireTool(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed", tool)
	}
}

// ext4Stat is what debugfs says about one path of an ext4 file.
type ext4Stat struct {
	Type     string
	Mode     int64
	UID, GID int
	Size     int64
}

var (
	statTypeRE = regexp.MustCompile(`Type: (\S+)\s+Mode:\s+(\d+)`)
	statUserRE = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+).*Size: (\d+)`)
)

func debugfsStatT(t *testing.T, img, p string) ext4Stat {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "stat "+p, img).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs stat %s: %v: %s", p, err, out)
	}
	m := statTypeRE.FindSubmatch(out)
	u := statUserRE.FindSubmatch(out)
	if m == nil || u == nil {
		t.Fatalf("debugfs stat %s: %s", p, out)
	}
	var s ext4Stat
	s.Type = string(m[1])
	s.Mode, _ = strconv.ParseInt(string(m[2]), 8, 64)
	s.UID, _ = strconv.Atoi(string(u[1]))
	s.GID, _ = strconv.Atoi(string(u[2]))
	s.Size, _ = strconv.ParseInt(string(u[3]), 10, 64)
	return s
}

func debugfsCat(t *testing.T, img, p string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "cat "+p, img).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s: %v", p, err)
	}
	return string(out)
}

func debugfsExists(t *testing.T, img, p string) bool {
	t.Helper()
	out, _ := exec.Command("debugfs", "-R", "stat "+p, img).CombinedOutput()
	return statTypeRE.Match(out)
}
