package workspace

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Git "freshens" (utime) an object it is asked to write when the object
// already exists, also when it exists only in an alternate: `git add`,
// `write-tree` or `apply --cached` run against the temporary store would
// touch the host repository's object files and packs. So no git command in
// this package writes an object into a store that can see the host's
// objects. Trees are built here (buildTrees) and written through an
// objectWriter, which asks first whether an object exists and writes only
// missing ones; git commands that must produce blobs (update-index hashing
// work tree files, apply making post-images) run against a scratch object
// directory without alternates, and the blobs they made are imported
// afterwards, again only when missing (importScratch).

// indexEntry is one file of a tree to build: mode, object id and full path.
type indexEntry struct {
	mode string // 100644, 100755, 120000 or 160000
	oid  string
	path string
}

// treeObject is a tree to store: its id and its content.
type treeObject struct {
	oid     string
	content []byte
}

// dirNode is a directory being assembled by buildTrees.
type dirNode struct {
	files map[string]indexEntry
	dirs  map[string]*dirNode
}

func newDirNode() *dirNode {
	return &dirNode{files: map[string]indexEntry{}, dirs: map[string]*dirNode{}}
}

// buildTrees computes the trees holding entries and returns the root tree id
// and every tree object, children before parents. A path that is both a file
// and a directory, or listed twice, is an error.
func (w *objectWriter) buildTrees(entries []indexEntry) (string, []treeObject, error) {
	root := newDirNode()
	for _, e := range entries {
		parts := strings.Split(e.path, "/")
		d := root
		for i, c := range parts {
			if c == "" || c == "." || c == ".." {
				return "", nil, fmt.Errorf("build tree: bad path %q", e.path)
			}
			last := i == len(parts)-1
			if _, ok := d.files[c]; ok {
				return "", nil, fmt.Errorf("build tree: %q is both a file and a directory or listed twice", strings.Join(parts[:i+1], "/"))
			}
			if last {
				if _, ok := d.dirs[c]; ok {
					return "", nil, fmt.Errorf("build tree: %q is both a file and a directory", e.path)
				}
				d.files[c] = e
				break
			}
			sub, ok := d.dirs[c]
			if !ok {
				sub = newDirNode()
				d.dirs[c] = sub
			}
			d = sub
		}
	}
	var trees []treeObject
	oid, err := w.hashDir(root, &trees)
	return oid, trees, err
}

// hashDir serialises d (after its subdirectories) in git's tree order:
// names compared bytewise, a directory's name as if it ended in "/".
func (w *objectWriter) hashDir(d *dirNode, trees *[]treeObject) (string, error) {
	type item struct {
		key, name, mode, oid string
	}
	items := make([]item, 0, len(d.files)+len(d.dirs))
	for name, sub := range d.dirs {
		oid, err := w.hashDir(sub, trees)
		if err != nil {
			return "", err
		}
		items = append(items, item{key: name + "/", name: name, mode: "40000", oid: oid})
	}
	for name, e := range d.files {
		items = append(items, item{key: name, name: name, mode: e.mode, oid: e.oid})
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.key, b.key) })
	var buf bytes.Buffer
	for _, it := range items {
		raw, err := hex.DecodeString(it.oid)
		if err != nil || len(raw) == 0 {
			return "", fmt.Errorf("build tree: bad object id %q", it.oid)
		}
		buf.WriteString(it.mode)
		buf.WriteByte(' ')
		buf.WriteString(it.name)
		buf.WriteByte(0)
		buf.Write(raw)
	}
	h, err := w.newHash()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "tree %d\x00", buf.Len())
	h.Write(buf.Bytes())
	oid := hex.EncodeToString(h.Sum(nil))
	*trees = append(*trees, treeObject{oid: oid, content: buf.Bytes()})
	return oid, nil
}

// writeTree stores the trees holding entries (only those missing from the
// store and its alternates) and returns the root tree id.
func (st *store) writeTree(ctx context.Context, dir string, entries []indexEntry) (string, error) {
	w := newObjectWriter(st, dir)
	defer w.close()
	root, trees, err := w.buildTrees(entries)
	if err != nil {
		return "", err
	}
	oids := make([]string, len(trees))
	for i, t := range trees {
		oids[i] = t.oid
	}
	have, err := st.existing(ctx, dir, oids)
	if err != nil {
		return "", err
	}
	for _, t := range trees {
		if have[t.oid] {
			continue
		}
		if err := w.add(objTree, t.oid, t.content); err != nil {
			return "", err
		}
	}
	if err := w.finish(ctx); err != nil {
		return "", err
	}
	return root, nil
}

// writeIndexTree is `git write-tree` of a temporary index without asking
// git to write (and so freshen) any object.
func (st *store) writeIndexTree(ctx context.Context, dir, index string) (string, error) {
	out, err := st.run(ctx, dir, index, nil, "ls-files", "--stage", "--full-name", "-z")
	if err != nil {
		return "", fmt.Errorf("read index: %w", err)
	}
	var entries []indexEntry
	for rec := range strings.SplitSeq(string(out), "\x00") {
		if rec == "" {
			continue
		}
		meta, path, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			return "", fmt.Errorf("read index: bad entry %q", rec)
		}
		if f[2] != "0" {
			return "", fmt.Errorf("read index: %q is unmerged", path)
		}
		entries = append(entries, indexEntry{mode: f[0], oid: f[1], path: path})
	}
	return st.writeTree(ctx, dir, entries)
}

// existing reports which of oids are in the store or its alternates, with
// one git cat-file --batch-check.
func (st *store) existing(ctx context.Context, dir string, oids []string) (map[string]bool, error) {
	have := map[string]bool{}
	if len(oids) == 0 {
		return have, nil
	}
	var in bytes.Buffer
	for _, o := range oids {
		in.WriteString(o)
		in.WriteByte('\n')
	}
	out, err := st.run(ctx, dir, "", in.Bytes(), "cat-file", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return nil, fmt.Errorf("check objects: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(oids) {
		return nil, fmt.Errorf("check objects: %d answers for %d objects", len(lines), len(oids))
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, " missing") {
			have[oids[i]] = true
		}
	}
	return have, nil
}
