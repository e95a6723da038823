package workspace

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"banger/internal/api"
)

// store is a temporary object directory on the host. New objects (trees of
// the prepare state, blobs of uncommitted files, blobs read from the guest)
// go there; the source repositories' object directories are alternates, so
// nothing is ever written into them.
type store struct {
	git     *gitRunner
	tmp     string   // the caller's scratch folder (callerfs.go)
	priv    string   // the daemon's scratch folder, root-owned 0700
	packs   []string // packs the daemon wrote (in priv), indexed into objects
	objects string   // primary object directory, inside tmp
	alts    []string // alternate object directories, read only
	format  string   // object format: sha1 or sha256
	nindex  int
}

// repoInfo describes a host repository.
type repoInfo struct {
	top     string // work tree top level
	objects string // object directory
	format  string // object format
	shallow bool
}

func newStore(ctx context.Context, g *gitRunner, tmp, priv string) (*store, error) {
	st := &store{git: g, tmp: tmp, priv: priv, objects: filepath.Join(tmp, "objects")}
	if err := g.mkdir(ctx, filepath.Join(st.objects, "info"), filepath.Join(st.objects, "pack")); err != nil {
		return nil, err
	}
	return st, nil
}

// openScratchStore makes the scratch folders of one operation (see
// scratchDirs) and a store in them; cleanup removes both.
func openScratchStore(ctx context.Context, g *gitRunner, stateDir, prefix string) (*store, func(), error) {
	tmp, priv, cleanup, err := scratchDirs(ctx, g, stateDir, prefix)
	if err != nil {
		return nil, nil, err
	}
	st, err := newStore(ctx, g, tmp, priv)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return st, cleanup, nil
}

// scratchDirs makes the caller's folder (as the caller) and the daemon's
// (root-owned 0700, inside stateDir) for one operation; cleanup removes
// both.
func scratchDirs(ctx context.Context, g *gitRunner, stateDir, prefix string) (tmp, priv string, cleanup func(), err error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", "", nil, fmt.Errorf("make workspace state dir: %w", err)
	}
	priv, err = os.MkdirTemp(stateDir, ".work-")
	if err != nil {
		return "", "", nil, fmt.Errorf("make work dir: %w", err)
	}
	tmp, err = g.mkTemp(ctx, prefix)
	if err != nil {
		os.RemoveAll(priv)
		return "", "", nil, err
	}
	return tmp, priv, func() {
		if testHookScratch != nil {
			testHookScratch(tmp, priv)
		}
		g.removeAll(tmp)
		os.RemoveAll(priv)
	}, nil
}

// testHookScratch, when set, sees both scratch folders before removal.
var testHookScratch func(callerDir, daemonDir string)

// addAlt adds an alternate object directory once.
func (st *store) addAlt(dir string) {
	if !slices.Contains(st.alts, dir) {
		st.alts = append(st.alts, dir)
	}
}

// env is the environment of a git command that must not write into any
// repository: a temporary index and the temporary object directory.
func (st *store) env(index string) []string {
	if index == "" {
		index = filepath.Join(st.tmp, "index-none")
	}
	quoted := make([]string, len(st.alts))
	for i, a := range st.alts {
		quoted[i] = a
		if strings.ContainsAny(a, ":\"\\") {
			quoted[i] = strconv.Quote(a)
		}
	}
	return []string{
		"GIT_INDEX_FILE=" + index,
		"GIT_OBJECT_DIRECTORY=" + st.objects,
		"GIT_ALTERNATE_OBJECT_DIRECTORIES=" + strings.Join(quoted, ":"),
	}
}

// newIndex returns the path of a fresh temporary index file.
func (st *store) newIndex() string {
	st.nindex++
	return filepath.Join(st.tmp, fmt.Sprintf("index-%d", st.nindex))
}

// run runs git in dir against the temporary store.
func (st *store) run(ctx context.Context, dir, index string, stdin []byte, args ...string) ([]byte, error) {
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	return st.git.run(ctx, dir, st.env(index), in, args...)
}

func (st *store) line(ctx context.Context, dir, index string, args ...string) (string, error) {
	out, err := st.run(ctx, dir, index, nil, args...)
	return strings.TrimSpace(string(out)), err
}

// openRepo inspects the repository holding dir and registers its objects as
// an alternate.
func (st *store) openRepo(ctx context.Context, dir string) (repoInfo, error) {
	out, err := st.git.line(ctx, dir, nil, "rev-parse", "--path-format=absolute",
		"--show-toplevel", "--git-path", "objects", "--show-object-format", "--is-shallow-repository")
	if err != nil {
		return repoInfo{}, api.Errorf(api.ErrInvalid, "%s is not a git work tree: %w", dir, err)
	}
	f := strings.Split(out, "\n")
	if len(f) != 4 {
		return repoInfo{}, fmt.Errorf("inspect repository %s: unexpected rev-parse output %q", dir, out)
	}
	info := repoInfo{top: f[0], objects: f[1], format: f[2], shallow: f[3] == "true"}
	if st.format == "" {
		st.format = info.format
	} else if st.format != info.format {
		return repoInfo{}, api.Errorf(api.ErrInvalid, "repository %s uses %s objects, expected %s", dir, info.format, st.format)
	}
	st.addAlt(info.objects)
	return info, nil
}

// zeroID is the all-zero object id of the store's format.
func (st *store) zeroID() string {
	if st.format == "sha256" {
		return strings.Repeat("0", 64)
	}
	return strings.Repeat("0", 40)
}

// treeEntry is one line of `git ls-tree -r -z -l`.
type treeEntry struct {
	mode string
	typ  string
	oid  string
	size int64 // -1 for trees and gitlinks
	path string
}

// lsTree lists every entry of tree (not descending into gitlinks).
func (st *store) lsTree(ctx context.Context, dir, tree string) ([]treeEntry, error) {
	out, err := st.run(ctx, dir, "", nil, "ls-tree", "-r", "-z", "-l", "--full-tree", tree)
	if err != nil {
		return nil, fmt.Errorf("list tree %s: %w", tree, err)
	}
	var entries []treeEntry
	for rec := range strings.SplitSeq(string(out), "\x00") {
		if rec == "" {
			continue
		}
		meta, path, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 4 {
			return nil, fmt.Errorf("list tree %s: bad entry %q", tree, rec)
		}
		e := treeEntry{mode: f[0], typ: f[1], oid: f[2], size: -1, path: path}
		if f[3] != "-" {
			if e.size, err = strconv.ParseInt(f[3], 10, 64); err != nil {
				return nil, fmt.Errorf("list tree %s: bad size in %q", tree, rec)
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
}
