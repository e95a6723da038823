// Command testreport reads `go test -json` on stdin and prints what a person
// wants from a test run: each package's result line as go test prints it, the
// output of failed tests, then every skipped test with its reason, the
// packages that skipped themselves (e2e without root), and a closing line
// "N passed, N failed, N skipped". Its exit status is go test's to give: the
// caller keeps it with pipefail.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// optional lists the suites that run only where their prerequisites are
// (a reference file, KVM, root): the summary says for each whether it ran.
var optional = []struct{ name, pkg, prefix string }{
	{"Firecracker API contract (needs Firecracker's swagger spec)", "banger/internal/vmm/firecracker", "Test*Swagger*"},
	{"Firecracker boot (needs KVM and firecracker)", "banger/internal/vmm/firecracker", "TestFirecrackerBoot"},
	{"end to end with real VMs (needs root and QEMU)", "banger/test/e2e", "Test*"},
	{"debootstrap image build", "banger/internal/image", "TestBuildDebian*"},
}

type suiteCount struct{ ran, skipped int }

type report struct {
	suites                  map[string]*suiteCount
	out                     io.Writer
	passed, failed, skipped int
	logs                    map[string][]string // "pkg test" -> output lines
	skips                   []string
	pkgSkips                []string
}

func main() {
	r := &report{out: os.Stdout, logs: map[string][]string{}, suites: map[string]*suiteCount{}}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(r.out, sc.Text()) // build errors and other plain lines
			continue
		}
		r.add(e)
	}
	r.summary()
}

func (r *report) add(e event) {
	key := e.Package + " " + e.Test
	switch e.Action {
	case "output":
		if e.Test == "" {
			r.packageOutput(e)
			return
		}
		if len(r.logs[key]) < 400 {
			r.logs[key] = append(r.logs[key], e.Output)
		}
	case "pass", "fail", "skip":
		if e.Test == "" {
			return
		}
		r.finish(e, key)
	}
}

// packageOutput prints package-level lines (ok/FAIL/no test files, panics,
// build failures) and notes packages whose TestMain skipped everything.
func (r *report) packageOutput(e event) {
	line := e.Output
	trim := strings.TrimSpace(line)
	if strings.Contains(trim, ": skipped") && !strings.HasPrefix(trim, "---") {
		r.pkgSkips = append(r.pkgSkips, e.Package+": "+trim)
	}
	if strings.HasPrefix(trim, "=== ") || strings.HasPrefix(trim, "--- ") || trim == "PASS" {
		return
	}
	fmt.Fprint(r.out, line)
}

func (r *report) finish(e event, key string) {
	lines := r.logs[key]
	delete(r.logs, key)
	r.countSuite(e)
	switch e.Action {
	case "pass":
		r.passed++
	case "fail":
		r.failed++
		fmt.Fprintf(r.out, "--- FAIL: %s (%s)\n%s", e.Test, e.Package, strings.Join(lines, ""))
	case "skip":
		r.skipped++
		r.skips = append(r.skips, fmt.Sprintf("%s %s: %s", e.Package, e.Test, skipReason(lines)))
	}
}

// skipReason is the last line the test logged before skipping.
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		if j := strings.Index(l, ".go:"); j >= 0 {
			if k := strings.Index(l[j:], ": "); k >= 0 {
				l = l[j+k+2:]
			}
		}
		return l
	}
	return "(no reason given)"
}

func (r *report) countSuite(e event) {
	if strings.Contains(e.Test, "/") {
		return
	}
	for _, o := range optional {
		if ok, _ := path.Match(o.prefix, e.Test); !ok || e.Package != o.pkg {
			continue
		}
		c := r.suites[o.name]
		if c == nil {
			c = &suiteCount{}
			r.suites[o.name] = c
		}
		if e.Action == "skip" {
			c.skipped++
		} else {
			c.ran++
		}
	}
}

func (r *report) summary() {
	fmt.Fprintln(r.out, "\noptional suites:")
	for _, o := range optional {
		c := r.suites[o.name]
		switch {
		case c == nil:
			fmt.Fprintf(r.out, "  %s: not run\n", o.name)
		case c.skipped > 0 && c.ran == 0:
			fmt.Fprintf(r.out, "  %s: SKIPPED (see below)\n", o.name)
		default:
			fmt.Fprintf(r.out, "  %s: ran %d tests, %d skipped\n", o.name, c.ran, c.skipped)
		}
	}
	if len(r.skips)+len(r.pkgSkips) > 0 {
		sort.Strings(r.skips)
		fmt.Fprintln(r.out, "\nskipped (each says why):")
		for _, s := range append(r.pkgSkips, r.skips...) {
			fmt.Fprintln(r.out, "  "+s)
		}
	}
	fmt.Fprintf(r.out, "\n%d passed, %d failed, %d skipped\n", r.passed, r.failed, r.skipped)
}
