package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"syscall"
)

// Two scratch folders per operation, never shared:
//
//   - the caller's folder (store.tmp): made by a process running as the
//     caller, written only by the caller's processes (git, tar, mkdir),
//     removed by one. The daemon never creates, links, opens or removes a
//     file in it; what it must put there goes through a pipe to a caller
//     process (git index-pack --stdin, tar -x).
//   - the daemon's folder (store.priv): root-owned, mode 0700, inside the
//     VM's workspace state folder; never named to a caller process. Packs
//     the daemon writes live there and are kept as the workspace state.

// callerCmd builds a command run as the caller with git's environment.
func (r *gitRunner) callerCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.env
	cmd.Dir = "/"
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	}
	return cmd
}

// runCaller runs a command as the caller and returns its stdout.
func (r *gitRunner) runCaller(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	cmd := r.callerCmd(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(lastLineOf(errb.String())))
	}
	return out.Bytes(), nil
}

func lastLineOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// mkTemp makes a private temporary folder as the caller.
func (r *gitRunner) mkTemp(ctx context.Context, prefix string) (string, error) {
	out, err := r.runCaller(ctx, nil, "mktemp", "-d", path.Join(os.TempDir(), prefix+"XXXXXXXX"))
	if err != nil {
		return "", fmt.Errorf("make temp dir: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if !strings.HasPrefix(dir, os.TempDir()) || strings.ContainsAny(dir, "\n\x00") {
		return "", fmt.Errorf("make temp dir: unexpected %q", dir)
	}
	return dir, nil
}

// mkdir makes folders (and their parents) as the caller.
func (r *gitRunner) mkdir(ctx context.Context, dirs ...string) error {
	if _, err := r.runCaller(ctx, nil, "mkdir", append([]string{"-p", "--"}, dirs...)...); err != nil {
		return fmt.Errorf("make dir: %w", err)
	}
	return nil
}

// removeAll removes a folder as the caller; best effort.
func (r *gitRunner) removeAll(dir string) {
	r.runCaller(context.Background(), nil, "rm", "-rf", "--", dir)
}

// exists reports whether p exists (a dangling symlink counts), as the
// caller sees it.
func (r *gitRunner) exists(ctx context.Context, p string) bool {
	_, err := r.runCaller(ctx, nil, "sh", "-c", `test -e "$1" || test -L "$1"`, "sh", p)
	return err == nil
}

// writeFiles writes files (path inside root -> content) under root as the
// caller: the daemon streams a tar to the caller's tar -x.
func (r *gitRunner) writeFiles(ctx context.Context, root string, files map[string][]byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		for d := path.Dir(p); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		data := files[p]
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if _, err := r.runCaller(ctx, &buf, "tar", "-x", "--no-same-owner", "-f", "-", "-C", root); err != nil {
		return fmt.Errorf("write files: %w", err)
	}
	return nil
}
