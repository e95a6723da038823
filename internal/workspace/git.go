package workspace

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// gitRunner runs git as the caller. Settings that would make git write into
// the repository on its own (fsmonitor daemons, split or untracked-cache
// index files, automatic gc) are switched off on every command.
type gitRunner struct {
	bin    string
	caller Caller
	cred   *syscall.Credential
	env    []string
}

// isolated is the environment that makes git ignore the caller's global and
// system config; used for repositories this package creates itself.
func isolated() []string {
	return []string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}
}

func newGitRunner(bin string, c Caller) (*gitRunner, error) {
	if c.UID < 0 || c.GID < 0 {
		return nil, fmt.Errorf("invalid caller uid %d gid %d", c.UID, c.GID)
	}
	r := &gitRunner{bin: bin, caller: c}
	home := ""
	u, err := user.LookupId(strconv.Itoa(c.UID))
	if err == nil {
		home = u.HomeDir
	}
	if c.UID != os.Getuid() || c.GID != os.Getgid() {
		cred := &syscall.Credential{Uid: uint32(c.UID), Gid: uint32(c.GID), Groups: []uint32{uint32(c.GID)}}
		if u != nil {
			if ids, err := u.GroupIds(); err == nil {
				for _, id := range ids {
					if n, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(n) != uint32(c.GID) {
						cred.Groups = append(cred.Groups, uint32(n))
					}
				}
			}
		}
		r.cred = cred
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "GIT_"), k == "HOME", k == "LC_ALL", k == "LANG":
			continue
		}
		r.env = append(r.env, kv)
	}
	r.env = append(r.env, "HOME="+home, "LC_ALL=C", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0")
	return r, nil
}

// command builds a git command run in dir with extra environment.
func (r *gitRunner) command(ctx context.Context, dir string, env []string, args ...string) *exec.Cmd {
	full := append([]string{
		"-c", "core.fsmonitor=false", "-c", "core.splitIndex=false",
		"-c", "core.untrackedCache=false", "-c", "index.sparse=false", "-c", "gc.auto=0",
		"-c", "maintenance.auto=false",
	}, args...)
	cmd := exec.CommandContext(ctx, r.bin, full...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, r.env...), env...)
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	}
	return cmd
}

// run runs git and returns its stdout; the error carries git's stderr.
func (r *gitRunner) run(ctx context.Context, dir string, env []string, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := r.command(ctx, dir, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), gitError(args, errb.Bytes(), err)
	}
	return out.Bytes(), nil
}

// line runs git and returns its trimmed stdout.
func (r *gitRunner) line(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	out, err := r.run(ctx, dir, env, nil, args...)
	return strings.TrimSpace(string(out)), err
}

func gitError(args []string, stderr []byte, err error) error {
	name := "git"
	if len(args) > 0 {
		name = "git " + args[0]
	}
	msg := strings.TrimSpace(string(stderr))
	if i := strings.LastIndex(msg, "\n"); i >= 0 {
		// Keep the last line: git prints hints first and the fatal error last.
		msg = strings.TrimSpace(msg[i+1:])
	}
	if msg == "" {
		return fmt.Errorf("%s: %w", name, err)
	}
	return fmt.Errorf("%s: %s: %w", name, msg, err)
}

// getenv returns key from the environment git commands run with.
func (r *gitRunner) getenv(key string) string {
	for _, kv := range slices.Backward(r.env) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// readFile reads a file as the caller (with cat), so the daemon never reads
// on the caller's behalf what the caller could not. A missing file reads as
// empty; a file over limit bytes is an error.
func (r *gitRunner) readFile(ctx context.Context, path string, limit int64) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "cat", "--", path)
	cmd.Env = r.env
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	}
	out := &capWriter{limit: limit}
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errb
	if err := cmd.Run(); err != nil {
		if out.over {
			return nil, fmt.Errorf("%s is over %d bytes", path, limit)
		}
		if msg := errb.String(); strings.Contains(msg, "No such file or directory") || strings.Contains(msg, "Not a directory") {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %s: %w", path, strings.TrimSpace(errb.String()), err)
	}
	return out.buf.Bytes(), nil
}
