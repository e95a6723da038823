package workspace

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A scratch object directory is where git may write blobs (update-index
// hashing work tree files, apply --cached making post-images). It has no
// alternates, so git cannot see, and so cannot freshen, any object of the
// host repository; importScratch then moves over only the objects the store
// and its alternates lack.

// newScratch makes an empty scratch object directory owned by the caller.
func (st *store) newScratch() (string, error) {
	st.nindex++
	dir := filepath.Join(st.tmp, fmt.Sprintf("scratch-%d", st.nindex))
	if err := st.git.mkdir(dir); err != nil {
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

// importScratch moves the loose objects of scratch that the store and its
// alternates lack into the store.
func (st *store) importScratch(ctx context.Context, dir, scratch string) error {
	var oids []string
	err := filepath.WalkDir(scratch, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(scratch, p)
		if err != nil {
			return err
		}
		fan, rest, ok := strings.Cut(filepath.ToSlash(rel), "/")
		if ok && len(fan) == 2 && !strings.Contains(rest, "/") && isHex(fan+rest) {
			oids = append(oids, fan+rest)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read scratch objects: %w", err)
	}
	have, err := st.existing(ctx, dir, oids)
	if err != nil {
		return err
	}
	for _, oid := range oids {
		if have[oid] {
			continue
		}
		fan := filepath.Join(st.objects, oid[:2])
		if err := st.git.mkdir(fan); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(scratch, oid[:2], oid[2:]), filepath.Join(fan, oid[2:])); err != nil {
			return fmt.Errorf("import object %s: %w", oid, err)
		}
	}
	return nil
}

// copyToScratch writes the blobs oids, read from the store and its
// alternates, into scratch as loose objects, so that a git command running
// against scratch can read them.
func (st *store) copyToScratch(ctx context.Context, dir, scratch string, oids []string) error {
	if len(oids) == 0 {
		return nil
	}
	cmd := st.git.command(ctx, dir, st.env(""), "cat-file", "--batch")
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
	zw, _ := zlib.NewWriterLevel(io.Discard, zlib.BestSpeed)
	for _, oid := range oids {
		if err = writeScratchBlob(out, zw, scratch, oid, st.git.mkdir); err != nil {
			break
		}
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("copy base files: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("copy base files: %w", gitError([]string{"cat-file"}, []byte(errb.String()), err))
	}
	return nil
}

// writeScratchBlob copies the next blob of a cat-file --batch stream into a
// loose object file.
func writeScratchBlob(out *bufio.Reader, zw *zlib.Writer, scratch, oid string, mkdir func(string) error) error {
	size, err := readBatchHeader(out, oid)
	if err != nil {
		return err
	}
	fan := filepath.Join(scratch, oid[:2])
	if err := mkdir(fan); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(fan, oid[2:]), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		if os.IsExist(err) {
			_, err = out.Discard(int(size) + 1)
		}
		return err
	}
	zw.Reset(f)
	_, err = fmt.Fprintf(zw, "blob %d\x00", size)
	if err == nil {
		_, err = io.CopyN(zw, out, size)
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = out.Discard(1) // newline after the content
	return err
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return s != ""
}
