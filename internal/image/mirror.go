package image

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"banger/internal/api"
)

// debianMirror returns the host's Debian archive URI from aptDir's
// sources.list and sources.list.d (*.list, deb822 *.sources): the first
// "deb" source with a main suite (not -security, -updates...) whose URI does
// not look like a security archive.
func debianMirror(aptDir string) (string, error) {
	files := []string{filepath.Join(aptDir, "sources.list")}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", pat))
		sort.Strings(m)
		files = append(files, m...)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uri string
		if strings.HasSuffix(f, ".sources") {
			uri = mirrorFromDeb822(string(data))
		} else {
			uri = mirrorFromList(string(data))
		}
		if uri != "" {
			return uri, nil
		}
	}
	return "", api.Errorf(api.ErrUnavailable, "no Debian mirror configured in %s (sources.list or sources.list.d)", aptDir)
}

// usable reports a deb source worth using for debootstrap.
func usable(uri string, suites []string) bool {
	if !strings.HasPrefix(uri, "http://") && !strings.HasPrefix(uri, "https://") {
		return false
	}
	if strings.Contains(uri, "security") {
		return false
	}
	for _, s := range suites {
		if s != "" && !strings.Contains(s, "-") && !strings.Contains(s, "/") {
			return true
		}
	}
	return false
}

// mirrorFromList reads one-line style sources: "deb [opts] URI SUITE COMP...".
func mirrorFromList(text string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		fields = fields[1:]
		if strings.HasPrefix(fields[0], "[") {
			for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
				fields = fields[1:]
			}
			if len(fields) == 0 {
				continue
			}
			fields = fields[1:]
		}
		if len(fields) >= 2 && usable(fields[0], fields[1:2]) {
			return fields[0]
		}
	}
	return ""
}

// mirrorFromDeb822 reads deb822 stanzas (Types, URIs, Suites, Enabled).
func mirrorFromDeb822(text string) string {
	for _, stanza := range strings.Split(text, "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if strings.EqualFold(fields["enabled"], "no") || !slices.Contains(strings.Fields(fields["types"]), "deb") {
			continue
		}
		suites := strings.Fields(fields["suites"])
		for _, uri := range strings.Fields(fields["uris"]) {
			if usable(uri, suites) {
				return uri
			}
		}
	}
	return ""
}
