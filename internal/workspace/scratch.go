package workspace

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// A scratch object directory is where git may write blobs (update-index
// hashing work tree files, apply --cached making post-images). It has no
// alternates, so git cannot see, and so cannot freshen, any object of the
// host repository; importScratch then moves over only the objects the store
// and its alternates lack.

// newScratch makes an empty scratch object directory, as the caller, in
// the caller's folder.
func (st *store) newScratch(ctx context.Context) (string, error) {
	st.nindex++
	dir := filepath.Join(st.tmp, fmt.Sprintf("scratch-%d", st.nindex))
	if err := st.git.mkdir(ctx, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// scratchEnv is the environment of a git command that writes objects: the
// temporary index and the scratch directory as the only object store.
func scratchEnv(index, scratch string) []string {
	return []string{
		"GIT_INDEX_FILE=" + index,
		"GIT_OBJECT_DIRECTORY=" + scratch,
		"GIT_ALTERNATE_OBJECT_DIRECTORIES=",
	}
}

// repoEnv is the environment of a read-only git command that needs the
// repository's own index (to tell tracked files and unchanged ones by their
// stat data) with the temporary object store.
func (st *store) repoEnv() []string {
	var env []string
	for _, kv := range st.env("") {
		if !strings.HasPrefix(kv, "GIT_INDEX_FILE=") {
			env = append(env, kv)
		}
	}
	return env
}

// runScratch runs git with index and the scratch object directory.
func (st *store) runScratch(ctx context.Context, dir, index, scratch string, stdin []byte, args ...string) ([]byte, error) {
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	return st.git.run(ctx, dir, scratchEnv(index, scratch), in, args...)
}

// importScratch copies the blobs of scratch that the store and its
// alternates lack into the store. The caller's git lists and reads them;
// the daemon checks each id against the content and packs them (pack.go).
func (st *store) importScratch(ctx context.Context, dir, scratch string) error {
	env := scratchEnv(filepath.Join(st.tmp, "index-none"), scratch)
	out, err := st.git.run(ctx, dir, env, nil, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return fmt.Errorf("read scratch objects: %w", err)
	}
	var oids []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		oid, typ, ok := strings.Cut(line, " ")
		if ok && typ == "blob" && isHex(oid) {
			oids = append(oids, oid)
		}
	}
	have, err := st.existing(ctx, dir, oids)
	if err != nil {
		return err
	}
	var missing []string
	for _, oid := range oids {
		if !have[oid] {
			missing = append(missing, oid)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	w := newObjectWriter(st, dir)
	defer w.close()
	err = st.catBlobs(ctx, dir, env, missing, func(oid string, size int64, r io.Reader) error {
		got, err := w.writeBlob(ctx, r, size)
		if err == nil && got != oid {
			err = fmt.Errorf("object %s reads back as %s", oid, got)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("import scratch objects: %w", err)
	}
	return w.finish(ctx)
}

// copyToScratch puts the blobs oids, read from the store and its
// alternates, into scratch, so that a git command running against scratch
// can read them: packed in the daemon's folder, indexed by the caller's git.
func (st *store) copyToScratch(ctx context.Context, dir, scratch string, oids []string) error {
	if len(oids) == 0 {
		return nil
	}
	p, err := newPackWriter(st)
	if err != nil {
		return err
	}
	defer p.abort()
	err = st.catBlobs(ctx, dir, st.env(""), oids, func(oid string, size int64, r io.Reader) error {
		return p.addReader(objBlob, oid, size, r)
	})
	if err != nil {
		return fmt.Errorf("copy base files: %w", err)
	}
	w := newObjectWriter(st, dir)
	h, err := w.newHash()
	if err != nil {
		return err
	}
	name, err := p.finish(ctx, dir, scratchEnv(filepath.Join(st.tmp, "index-none"), scratch), h)
	if name != "" {
		os.Remove(name) // not part of the workspace state
	}
	return err
}

// catBlobs reads the blobs oids with git cat-file --batch (as the caller,
// with env) and hands each to fn, which must read exactly size bytes.
func (st *store) catBlobs(ctx context.Context, dir string, env, oids []string, fn func(oid string, size int64, r io.Reader) error) error {
	cmd := st.git.command(ctx, dir, env, "cat-file", "--batch")
	cmd.Stdin = strings.NewReader(strings.Join(oids, "\n") + "\n")
	var errb strings.Builder
	cmd.Stderr = &errb
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start git cat-file: %w", err)
	}
	out := bufio.NewReaderSize(pipe, 64<<10)
	for _, oid := range oids {
		var size int64
		if size, err = readBatchHeader(out, oid); err != nil {
			break
		}
		if err = fn(oid, size, io.LimitReader(out, size)); err != nil {
			break
		}
		if _, err = out.Discard(1); err != nil { // newline after the content
			break
		}
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	if err := cmd.Wait(); err != nil {
		return gitError([]string{"cat-file"}, []byte(errb.String()), err)
	}
	return nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return s != ""
}
