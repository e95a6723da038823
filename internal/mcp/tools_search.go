package mcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Bounds of a folder walk (the guest decides what is in it).
const (
	maxWalkEntries   = 50000
	maxSearchFile    = 1 << 20
	maxSearchBytes   = 64 << 20
	maxLineText      = 500
	defaultMaxResult = 200
	maxResults       = 2000
)

// FileGlobInput are file_glob's arguments.
type FileGlobInput struct {
	VM         string `json:"vm" jsonschema:"the VM's name or id"`
	Pattern    string `json:"pattern" jsonschema:"glob relative to path: * ? [..] match within a name, ** any number of folders, e.g. **/*.go"`
	Path       string `json:"path,omitempty" jsonschema:"folder to search from (default /root)"`
	MaxResults int    `json:"max_results,omitempty" jsonschema:"at most this many paths (default 200)"`
}

// FileGlobResult lists matching paths.
type FileGlobResult struct {
	Paths     []string `json:"paths"`
	Truncated bool     `json:"truncated,omitempty" jsonschema:"the search stopped at a bound; there may be more"`
}

// FileSearchInput are file_search's arguments.
type FileSearchInput struct {
	VM         string `json:"vm" jsonschema:"the VM's name or id"`
	Pattern    string `json:"pattern" jsonschema:"regular expression (RE2 syntax) matched against each line"`
	Path       string `json:"path,omitempty" jsonschema:"file or folder to search (default /root)"`
	Glob       string `json:"glob,omitempty" jsonschema:"only files whose path (relative to path) matches this glob, e.g. **/*.go"`
	IgnoreCase bool   `json:"ignore_case,omitempty"`
	MaxResults int    `json:"max_results,omitempty" jsonschema:"at most this many matching lines (default 200)"`
}

// SearchMatch is one matching line.
type SearchMatch struct {
	Path string `json:"path"`
	Line int    `json:"line"`
	Text string `json:"text"`
}

// FileSearchResult lists matching lines.
type FileSearchResult struct {
	Matches   []SearchMatch `json:"matches"`
	Truncated bool          `json:"truncated,omitempty" jsonschema:"the search stopped at a bound; there may be more"`
}

func (s *server) fileGlob(ctx context.Context, _ *mcp.CallToolRequest, in FileGlobInput) (FileGlobResult, error) {
	if err := checkGlob(in.Pattern); err != nil {
		return FileGlobResult{}, err
	}
	limit := resultLimit(in.MaxResults)
	root, g, err := s.walkRoot(ctx, in.VM, in.Path)
	if err != nil {
		return FileGlobResult{}, err
	}
	res := FileGlobResult{Paths: []string{}}
	res.Truncated, err = walk(ctx, g, root, func(rel string, fi fs.FileInfo) bool {
		if matchGlob(in.Pattern, rel) {
			res.Paths = append(res.Paths, path.Join(root, rel))
		}
		return len(res.Paths) < limit
	})
	return res, err
}

func (s *server) fileSearch(ctx context.Context, _ *mcp.CallToolRequest, in FileSearchInput) (FileSearchResult, error) {
	expr := in.Pattern
	if in.IgnoreCase {
		expr = "(?i)" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return FileSearchResult{}, fmt.Errorf("pattern: %w", err)
	}
	if in.Glob != "" {
		if err := checkGlob(in.Glob); err != nil {
			return FileSearchResult{}, err
		}
	}
	limit := resultLimit(in.MaxResults)
	root, g, err := s.walkRoot(ctx, in.VM, in.Path)
	if err != nil {
		return FileSearchResult{}, err
	}
	res := FileSearchResult{Matches: []SearchMatch{}}
	var budget int64 = maxSearchBytes
	search := func(p string, size int64) bool {
		if size > maxSearchFile {
			return true
		}
		if budget -= size; budget < 0 {
			res.Truncated = true
			return false
		}
		data, _, err := g.ReadFile(p, 0, maxSearchFile)
		if err != nil || isBinary(data) {
			return true
		}
		for n, line := range bytes.Split(data, []byte("\n")) {
			if re.Match(line) {
				text := string(line)
				if len(text) > maxLineText {
					text = text[:maxLineText] + "..."
				}
				res.Matches = append(res.Matches, SearchMatch{Path: p, Line: n + 1, Text: text})
				if len(res.Matches) >= limit {
					res.Truncated = true
					return false
				}
			}
		}
		return true
	}
	if fi, err := g.Stat(root); err == nil && fi.Mode().IsRegular() {
		search(root, fi.Size())
		return res, nil
	}
	truncated, err := walk(ctx, g, root, func(rel string, fi fs.FileInfo) bool {
		if !fi.Mode().IsRegular() || in.Glob != "" && !matchGlob(in.Glob, rel) {
			return true
		}
		return search(path.Join(root, rel), fi.Size())
	})
	res.Truncated = res.Truncated || truncated
	return res, err
}

func resultLimit(n int) int {
	if n <= 0 {
		return defaultMaxResult
	}
	return min(n, maxResults)
}

func (s *server) walkRoot(ctx context.Context, vm, p string) (string, Guest, error) {
	if p == "" {
		p = guestHome
	}
	root, err := guestPath(p)
	if err != nil {
		return "", nil, err
	}
	g, err := s.Guests.Open(ctx, vm)
	if err != nil {
		return "", nil, err
	}
	if _, err := g.Stat(root); err != nil {
		return "", nil, fileErr(root, err)
	}
	return root, g, nil
}

// walk visits every entry under root (not following symlinks, skipping
// .git folders) in name order, calling fn with the path relative to root
// until fn returns false. It reports whether it stopped early.
func walk(ctx context.Context, g Guest, root string, fn func(rel string, fi fs.FileInfo) bool) (bool, error) {
	visited := 0
	var visit func(rel string) (bool, error)
	visit = func(rel string) (bool, error) {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		infos, err := g.ReadDir(path.Join(root, rel))
		if err != nil {
			if rel == "" {
				return false, fileErr(root, err)
			}
			return false, nil // unreadable subfolder: skip
		}
		sort.Slice(infos, func(i, j int) bool { return infos[i].Name() < infos[j].Name() })
		for _, fi := range infos {
			if visited++; visited > maxWalkEntries {
				return true, nil
			}
			r := path.Join(rel, fi.Name())
			if !fn(r, fi) {
				return true, nil
			}
			if fi.IsDir() && fi.Name() != ".git" {
				if stop, err := visit(r); stop || err != nil {
					return stop, err
				}
			}
		}
		return false, nil
	}
	return visit("")
}

func checkGlob(pattern string) error {
	if pattern == "" {
		return errors.New("pattern is empty")
	}
	for _, seg := range strings.Split(pattern, "/") {
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("glob %q: %w", pattern, err)
		}
	}
	return nil
}

// matchGlob matches a slash-separated relative path against pattern, where
// a "**" segment matches any number of folders. A pattern without a slash
// matches the base name at any depth (like .gitignore).
func matchGlob(pattern, rel string) bool {
	if !strings.Contains(pattern, "/") {
		ok, _ := path.Match(pattern, path.Base(rel))
		return ok
	}
	return matchSegs(strings.Split(pattern, "/"), strings.Split(rel, "/"))
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
