package mcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// maxFileBytes bounds a file read whole (file_read's window, file_edit).
const maxFileBytes = 8 << 20

// guestHome is where relative guest paths start.
const guestHome = "/root"

// FileReadInput are file_read's arguments.
type FileReadInput struct {
	VM     string `json:"vm" jsonschema:"the VM's name or id"`
	Path   string `json:"path" jsonschema:"file path in the guest (relative paths start at /root)"`
	Offset int    `json:"offset,omitempty" jsonschema:"first line to return, counting from 1 (default 1)"`
	Limit  int    `json:"limit,omitempty" jsonschema:"how many lines to return (default 2000)"`
}

// FileReadResult is a window of a text file's lines.
type FileReadResult struct {
	Path      string `json:"path"`
	Content   string `json:"content" jsonschema:"the lines, as in the file"`
	StartLine int    `json:"start_line"`
	EndLine   int    `json:"end_line"`
	Size      int64  `json:"size" jsonschema:"the file's size in bytes"`
	More      bool   `json:"more,omitempty" jsonschema:"the file has more lines after end_line"`
	Truncated bool   `json:"truncated,omitempty" jsonschema:"the window was cut at the output cap"`
}

// FileWriteInput are file_write's arguments.
type FileWriteInput struct {
	VM      string `json:"vm" jsonschema:"the VM's name or id"`
	Path    string `json:"path" jsonschema:"file path in the guest (relative paths start at /root); missing folders are created"`
	Content string `json:"content" jsonschema:"the file's whole new content"`
	Mode    string `json:"mode,omitempty" jsonschema:"octal permissions for a new file, e.g. 0755 (default 0644; an existing file keeps its mode)"`
}

// FileWriteResult says what was written.
type FileWriteResult struct {
	Path  string `json:"path"`
	Bytes int    `json:"bytes"`
}

// FileEditInput are file_edit's arguments.
type FileEditInput struct {
	VM         string `json:"vm" jsonschema:"the VM's name or id"`
	Path       string `json:"path" jsonschema:"file path in the guest (relative paths start at /root)"`
	OldString  string `json:"old_string" jsonschema:"the exact text to replace; it must occur exactly once unless replace_all"`
	NewString  string `json:"new_string" jsonschema:"the replacement text"`
	ReplaceAll bool   `json:"replace_all,omitempty" jsonschema:"replace every occurrence"`
}

// FileEditResult says how many occurrences were replaced.
type FileEditResult struct {
	Path         string `json:"path"`
	Replacements int    `json:"replacements"`
}

// FileListInput are file_list's arguments.
type FileListInput struct {
	VM   string `json:"vm" jsonschema:"the VM's name or id"`
	Path string `json:"path,omitempty" jsonschema:"folder in the guest (default /root)"`
}

// FileEntry is one folder entry.
type FileEntry struct {
	Name    string    `json:"name"`
	Type    string    `json:"type" jsonschema:"file, dir, symlink or other"`
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"`
	ModTime time.Time `json:"mod_time"`
}

// FileListResult is a folder's entries.
type FileListResult struct {
	Path      string      `json:"path"`
	Entries   []FileEntry `json:"entries"`
	Truncated bool        `json:"truncated,omitempty" jsonschema:"only the first entries are listed"`
}

const maxListEntries = 2000

func (s *server) addFileTools(ms *mcp.Server) {
	addTool(ms, "file_read", "Read file", "Read lines of a text file in a VM.", readOnly, s.fileRead)
	addTool(ms, "file_write", "Write file", "Create or replace a file in a VM with the given content (atomic).", destructive, s.fileWrite)
	addTool(ms, "file_edit", "Edit file", "Replace an exact string in a file in a VM. old_string must occur exactly once unless replace_all is set.", destructive, s.fileEdit)
	addTool(ms, "file_list", "List folder", "List a folder in a VM.", readOnly, s.fileList)
	addTool(ms, "file_glob", "Find files", "Find files in a VM whose path matches a glob (* ? [..] within a name, ** across folders), e.g. **/*.go.", readOnly, s.fileGlob)
	addTool(ms, "file_search", "Search files", "Search text files in a VM for a regular expression (RE2 syntax); returns matching lines.", readOnly, s.fileSearch)
}

// guestPath makes p absolute and clean.
func guestPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("path is empty")
	}
	if strings.ContainsRune(p, 0) {
		return "", errors.New("path contains a NUL byte")
	}
	if !path.IsAbs(p) {
		p = path.Join(guestHome, p)
	}
	return path.Clean(p), nil
}

// readWhole reads a whole text file (bounded).
func readWhole(g Guest, p string) ([]byte, error) {
	data, size, err := g.ReadFile(p, 0, maxFileBytes+1)
	if err != nil {
		return nil, fileErr(p, err)
	}
	if size > maxFileBytes || len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s is larger than %d MiB", p, maxFileBytes>>20)
	}
	return data, nil
}

func fileErr(p string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such file or folder", p)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied", p)
	}
	return fmt.Errorf("%s: %w", p, err)
}

func isBinary(data []byte) bool {
	return bytes.IndexByte(data[:min(len(data), 8192)], 0) >= 0
}

func (s *server) fileRead(ctx context.Context, _ *mcp.CallToolRequest, in FileReadInput) (FileReadResult, error) {
	p, err := guestPath(in.Path)
	if err != nil {
		return FileReadResult{}, err
	}
	if in.Offset < 0 || in.Limit < 0 {
		return FileReadResult{}, errors.New("offset and limit must not be negative")
	}
	g, err := s.Guests.Open(ctx, in.VM)
	if err != nil {
		return FileReadResult{}, err
	}
	data, size, err := g.ReadFile(p, 0, maxFileBytes)
	if err != nil {
		return FileReadResult{}, fileErr(p, err)
	}
	if isBinary(data) {
		return FileReadResult{}, fmt.Errorf("%s looks binary (it has NUL bytes); read it with vm_exec, e.g. base64", p)
	}
	start, limit := max(in.Offset, 1), in.Limit
	if limit == 0 {
		limit = 2000
	}
	res := FileReadResult{Path: p, Size: size, StartLine: start, EndLine: start - 1}
	rest := data
	for line := 1; line < start && len(rest) > 0; line++ {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			rest = nil
			break
		}
		rest = rest[i+1:]
	}
	var out []byte
	for n := 0; n < limit && len(rest) > 0; n++ {
		i := bytes.IndexByte(rest, '\n')
		ln := rest
		if i >= 0 {
			ln = rest[:i+1]
		}
		if len(out)+len(ln) > 4*s.OutputCap {
			res.Truncated = true
			break
		}
		out = append(out, ln...)
		rest = rest[len(ln):]
		res.EndLine++
	}
	res.Content = string(out)
	res.More = len(rest) > 0 || int64(len(data)) < size
	return res, nil
}

func (s *server) fileWrite(ctx context.Context, _ *mcp.CallToolRequest, in FileWriteInput) (FileWriteResult, error) {
	p, err := guestPath(in.Path)
	if err != nil {
		return FileWriteResult{}, err
	}
	mode := fs.FileMode(0o644)
	if in.Mode != "" {
		var m uint32
		if _, err := fmt.Sscanf(in.Mode, "%o", &m); err != nil || m > 0o7777 {
			return FileWriteResult{}, fmt.Errorf("mode %q is not an octal permission like 0644", in.Mode)
		}
		mode = fs.FileMode(m)
	}
	g, err := s.Guests.Open(ctx, in.VM)
	if err != nil {
		return FileWriteResult{}, err
	}
	if err := g.WriteFile(p, []byte(in.Content), mode, true); err != nil {
		return FileWriteResult{}, fileErr(p, err)
	}
	return FileWriteResult{Path: p, Bytes: len(in.Content)}, nil
}

func (s *server) fileEdit(ctx context.Context, _ *mcp.CallToolRequest, in FileEditInput) (FileEditResult, error) {
	p, err := guestPath(in.Path)
	if err != nil {
		return FileEditResult{}, err
	}
	if in.OldString == "" {
		return FileEditResult{}, errors.New("old_string is empty")
	}
	if in.OldString == in.NewString {
		return FileEditResult{}, errors.New("old_string and new_string are the same")
	}
	g, err := s.Guests.Open(ctx, in.VM)
	if err != nil {
		return FileEditResult{}, err
	}
	data, err := readWhole(g, p)
	if err != nil {
		return FileEditResult{}, err
	}
	n := bytes.Count(data, []byte(in.OldString))
	switch {
	case n == 0:
		return FileEditResult{}, fmt.Errorf("old_string not found in %s", p)
	case n > 1 && !in.ReplaceAll:
		return FileEditResult{}, fmt.Errorf("old_string occurs %d times in %s: add context to make it unique, or set replace_all", n, p)
	}
	edited := bytes.ReplaceAll(data, []byte(in.OldString), []byte(in.NewString))
	if err := g.WriteFile(p, edited, 0o644, false); err != nil {
		return FileEditResult{}, fileErr(p, err)
	}
	return FileEditResult{Path: p, Replacements: n}, nil
}

func entryType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "other"
}

func (s *server) fileList(ctx context.Context, _ *mcp.CallToolRequest, in FileListInput) (FileListResult, error) {
	if in.Path == "" {
		in.Path = guestHome
	}
	p, err := guestPath(in.Path)
	if err != nil {
		return FileListResult{}, err
	}
	g, err := s.Guests.Open(ctx, in.VM)
	if err != nil {
		return FileListResult{}, err
	}
	infos, err := g.ReadDir(p)
	if err != nil {
		return FileListResult{}, fileErr(p, err)
	}
	res := FileListResult{Path: p, Entries: []FileEntry{}}
	for i, fi := range infos {
		if i == maxListEntries {
			res.Truncated = true
			break
		}
		res.Entries = append(res.Entries, FileEntry{Name: fi.Name(), Type: entryType(fi.Mode()), Size: fi.Size(),
			Mode: fmt.Sprintf("%04o", fi.Mode().Perm()), ModTime: fi.ModTime().UTC()})
	}
	return res, nil
}
