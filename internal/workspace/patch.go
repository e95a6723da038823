package workspace

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"banger/internal/api"
)

// fileChange is one file section of a git patch.
type fileChange struct {
	oldPath, newPath string // "" for /dev/null
	added, deleted   bool
	renamed, copied  bool
	newMode          string // mode after the change, when the patch says
	target           string // new symlink target (newMode 120000, text hunks)
	binary           bool   // content as a GIT binary patch
}

// symlinkMode is git's mode of a symbolic link.
const symlinkMode = "120000"

// CheckPatch parses a git-format patch strictly and returns, sorted, every
// path it touches. It fails on anything it does not understand and on
// unsafe paths: absolute, with a ".." component, with control characters, or
// inside a .git directory.
func CheckPatch(patch []byte) ([]string, error) {
	changes, err := parsePatch(string(patch))
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, c := range changes {
		for _, p := range []string{c.oldPath, c.newPath} {
			if p != "" && !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	slices.Sort(paths)
	return paths, nil
}

// checkPatchPath refuses a path that could reach outside the work tree or
// into git's own files.
func checkPatchPath(p string) error {
	switch {
	case p == "":
		return api.Errorf(api.ErrInvalid, "patch has an empty path")
	case hasControl(p):
		return api.Errorf(api.ErrInvalid, "patch path %q has control characters", p)
	case strings.HasPrefix(p, "/"):
		return api.Errorf(api.ErrInvalid, "patch path %q is absolute", p)
	case len(p) > maxPathLen:
		return api.Errorf(api.ErrInvalid, "patch path %q is too long", p)
	}
	for c := range strings.SplitSeq(p, "/") {
		switch {
		case c == "..":
			return api.Errorf(api.ErrInvalid, "patch path %q leaves the repository", p)
		case c == "" || c == ".":
			return api.Errorf(api.ErrInvalid, "patch path %q is not canonical", p)
		case isGitName(c):
			return api.Errorf(api.ErrInvalid, "patch path %q is inside .git", p)
		}
	}
	return nil
}

// parsePatch parses a patch made of `diff --git` sections only.
func parsePatch(patch string) ([]fileChange, error) {
	lines := strings.Split(patch, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var changes []fileChange
	for i := 0; i < len(lines); {
		if !strings.HasPrefix(lines[i], "diff --git ") {
			return nil, api.Errorf(api.ErrInvalid, "patch line %d: expected \"diff --git\", got %q", i+1, clip(lines[i]))
		}
		c, next, err := parseSection(lines, i)
		if err != nil {
			return nil, err
		}
		for _, p := range []string{c.oldPath, c.newPath} {
			if p != "" {
				if err := checkPatchPath(p); err != nil {
					return nil, err
				}
			}
		}
		changes = append(changes, c)
		i = next
	}
	return changes, nil
}

// parseSection parses the file section starting at lines[i] and returns the
// index of the line after it.
func parseSection(lines []string, i int) (fileChange, int, error) {
	var c fileChange
	bad := func(n int, why string) error {
		return api.Errorf(api.ErrInvalid, "patch line %d: %s: %q", n+1, why, clip(lines[n]))
	}
	a, b, err := gitHeaderNames(strings.TrimPrefix(lines[i], "diff --git "))
	if err != nil {
		return c, 0, bad(i, err.Error())
	}
	c.oldPath, c.newPath = a, b
	i++
	for i < len(lines) && !strings.HasPrefix(lines[i], "@@ ") && !strings.HasPrefix(lines[i], "diff --git ") {
		l := lines[i]
		var name string
		var err error
		switch {
		case strings.HasPrefix(l, "GIT binary patch"):
			next, err := skipBinary(lines, i+1)
			if err != nil {
				return c, 0, err
			}
			c.binary = true
			return c, next, nil
		case strings.HasPrefix(l, "rename from "), strings.HasPrefix(l, "copy from "):
			_, rest, _ := strings.Cut(l, " from ")
			name, err = unquoteName(rest)
			c.oldPath, c.renamed, c.copied = name, strings.HasPrefix(l, "rename"), strings.HasPrefix(l, "copy")
		case strings.HasPrefix(l, "rename to "), strings.HasPrefix(l, "copy to "):
			_, rest, _ := strings.Cut(l, " to ")
			name, err = unquoteName(rest)
			c.newPath = name
		case strings.HasPrefix(l, "--- "), strings.HasPrefix(l, "+++ "):
			name, err = diffLineName(l[4:])
			if l[0] == '-' {
				c.oldPath, c.added = name, name == ""
			} else {
				c.newPath, c.deleted = name, name == ""
			}
		case strings.HasPrefix(l, "new file mode "):
			c.added, c.oldPath = true, ""
			c.newMode = strings.TrimPrefix(l, "new file mode ")
		case strings.HasPrefix(l, "new mode "):
			c.newMode = strings.TrimPrefix(l, "new mode ")
		case strings.HasPrefix(l, "index ") && strings.Count(l, " ") == 2:
			c.newMode = l[strings.LastIndexByte(l, ' ')+1:]
		case strings.HasPrefix(l, "deleted file mode "):
			c.deleted, c.newPath = true, ""
		case strings.HasPrefix(l, "Binary files ") && strings.HasSuffix(l, " differ"):
		case isHeaderLine(l):
		default:
			return c, 0, bad(i, "unexpected line in file header")
		}
		if err != nil {
			return c, 0, bad(i, err.Error())
		}
		i++
	}
	var newSide strings.Builder
	for i < len(lines) && strings.HasPrefix(lines[i], "@@ ") {
		next, err := skipHunk(lines, i)
		if err != nil {
			return c, 0, err
		}
		if c.newMode == symlinkMode {
			appendNewSide(&newSide, lines[i+1:next])
		}
		i = next
	}
	c.target = newSide.String()
	if c.oldPath == "" && c.newPath == "" {
		return c, 0, api.Errorf(api.ErrInvalid, "patch line %d: file section without a name", i)
	}
	return c, i, nil
}

// appendNewSide adds the new-side text of one hunk's lines to b.
func appendNewSide(b *strings.Builder, hunk []string) {
	newLast := false
	for _, l := range hunk {
		switch {
		case l == "" || l[0] == ' ' || l[0] == '+':
			if l != "" {
				l = l[1:]
			}
			b.WriteString(l + "\n")
			newLast = true
		case l[0] == '-':
			newLast = false
		case l[0] == '\\' && newLast:
			s := strings.TrimSuffix(b.String(), "\n")
			b.Reset()
			b.WriteString(s)
		}
	}
}

// isHeaderLine reports git extended header lines that name no file.
func isHeaderLine(l string) bool {
	for _, p := range []string{"old mode ", "new mode ", "similarity index ", "dissimilarity index ", "index "} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// skipHunk checks the hunk at lines[i] against its line counts.
func skipHunk(lines []string, i int) (int, error) {
	var oldN, newN int
	h := lines[i]
	end := strings.Index(h[3:], " @@")
	if end < 0 {
		return 0, api.Errorf(api.ErrInvalid, "patch line %d: bad hunk header %q", i+1, clip(h))
	}
	for _, r := range strings.Fields(h[3 : 3+end]) {
		n := 1
		_, cnt, hasCnt := strings.Cut(r[1:], ",")
		var err error
		if hasCnt {
			n, err = strconv.Atoi(cnt)
		}
		if err != nil || n < 0 || (r[0] != '-' && r[0] != '+') {
			return 0, api.Errorf(api.ErrInvalid, "patch line %d: bad hunk header %q", i+1, clip(h))
		}
		if r[0] == '-' {
			oldN = n
		} else {
			newN = n
		}
	}
	i++
	for oldN > 0 || newN > 0 {
		if i >= len(lines) {
			return 0, api.Errorf(api.ErrInvalid, "patch ends inside a hunk")
		}
		l := lines[i]
		switch {
		case l == "" || l[0] == ' ':
			oldN--
			newN--
		case l[0] == '-':
			oldN--
		case l[0] == '+':
			newN--
		case l[0] == '\\':
		default:
			return 0, api.Errorf(api.ErrInvalid, "patch line %d: unexpected line in hunk: %q", i+1, clip(l))
		}
		if oldN < 0 || newN < 0 {
			return 0, api.Errorf(api.ErrInvalid, "patch line %d: hunk longer than its header says", i+1)
		}
		i++
	}
	for i < len(lines) && strings.HasPrefix(lines[i], `\`) {
		i++
	}
	return i, nil
}

// skipBinary skips the one or two literal/delta blocks of a binary patch.
func skipBinary(lines []string, i int) (int, error) {
	for block := 0; block < 2 && i < len(lines); block++ {
		if !strings.HasPrefix(lines[i], "literal ") && !strings.HasPrefix(lines[i], "delta ") {
			if block == 0 {
				return 0, api.Errorf(api.ErrInvalid, "patch line %d: bad binary patch", i+1)
			}
			break
		}
		i++
		for i < len(lines) && lines[i] != "" {
			if c := lines[i][0]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
				return 0, api.Errorf(api.ErrInvalid, "patch line %d: bad binary patch data", i+1)
			}
			i++
		}
		if i < len(lines) {
			i++ // the blank line ending the block
		}
	}
	return i, nil
}

// gitHeaderNames returns the two names of a "diff --git" line without their
// a/ and b/ prefixes.
func gitHeaderNames(s string) (string, string, error) {
	var a, b string
	var err error
	switch {
	case strings.HasPrefix(s, `"`):
		var rest string
		a, rest, err = cutQuoted(s)
		if err == nil && !strings.HasPrefix(rest, " ") {
			err = fmt.Errorf("bad file names")
		}
		if err == nil {
			b, err = unquoteName(rest[1:])
		}
	case strings.HasSuffix(s, `"`) && strings.Contains(s, ` "`):
		i := strings.LastIndex(s, ` "`)
		a = s[:i]
		b, err = unquoteName(s[i+1:])
	default:
		// Unquoted names with spaces are ambiguous: like git, take them only
		// when both halves name the same file, else rely on the lines after.
		n := len(s) / 2
		if len(s)%2 != 1 || s[n] != ' ' {
			return "", "", nil
		}
		a, b = s[:n], s[n+1:]
		_, ra, okA := strings.Cut(a, "/")
		_, rb, okB := strings.Cut(b, "/")
		if !okA || !okB || ra != rb {
			return "", "", nil
		}
	}
	if err != nil {
		return "", "", err
	}
	if a, err = stripPrefix(a); err != nil {
		return "", "", err
	}
	if b, err = stripPrefix(b); err != nil {
		return "", "", err
	}
	return a, b, nil
}

// diffLineName returns the name of a ---/+++ line, "" for /dev/null.
func diffLineName(s string) (string, error) {
	if i := strings.IndexByte(s, '\t'); i >= 0 && !strings.HasPrefix(s, `"`) {
		s = s[:i]
	}
	name, err := unquoteName(strings.TrimRight(s, "\t"))
	if err != nil || name == "/dev/null" {
		return "", err
	}
	return stripPrefix(name)
}

// stripPrefix removes the first path component, as git apply -p1 does.
func stripPrefix(p string) (string, error) {
	_, rest, ok := strings.Cut(p, "/")
	if !ok {
		return "", fmt.Errorf("name %q has no a/ or b/ prefix", p)
	}
	return rest, nil
}

// unquoteName undoes git's C-style quoting of a whole name.
func unquoteName(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	name, rest, err := cutQuoted(s)
	if err == nil && rest != "" {
		err = fmt.Errorf("junk after quoted name")
	}
	return name, err
}

// cutQuoted unquotes the C-style quoted string at the start of s.
func cutQuoted(s string) (string, string, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 >= len(s) {
				return "", "", fmt.Errorf("bad quoted name")
			}
			i++
			switch e := s[i]; e {
			case 'a', 'b', 't', 'n', 'v', 'f', 'r':
				b.WriteByte(map[byte]byte{'a': 7, 'b': 8, 't': 9, 'n': 10, 'v': 11, 'f': 12, 'r': 13}[e])
			case '"', '\\':
				b.WriteByte(e)
			case '0', '1', '2', '3':
				if i+2 >= len(s) {
					return "", "", fmt.Errorf("bad quoted name")
				}
				v, err := strconv.ParseUint(s[i:i+3], 8, 8)
				if err != nil {
					return "", "", fmt.Errorf("bad quoted name")
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				return "", "", fmt.Errorf("bad quoted name")
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated quoted name")
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
