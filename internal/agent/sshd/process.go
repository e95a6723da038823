package sshd

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"banger/internal/agent/reap"
)

// startFunc starts cmd and returns a function that waits for its exit.
type startFunc func(cmd *exec.Cmd) (wait func() (syscall.WaitStatus, error), err error)

// reapStart starts processes through the PID-1-safe reaper.
func reapStart(cmd *exec.Cmd) (func() (syscall.WaitStatus, error), error) {
	return reap.Start(cmd)
}

// defaultPath is PATH for sessions unless Config.Env or the client sets one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// exitNotFound is the shell's status for a command that does not exist.
const exitNotFound = 127

// errNotFound reports a command that cannot be run; the session exits 127.
type errNotFound struct{ name string }

func (e *errNotFound) Error() string { return e.name + ": command not found" }

// errNoShell is returned for a shell request in an image without a shell.
var errNoShell = errors.New("no shell in this image (no login shell for root and no /bin/sh)")

// loginShell returns root's shell from the passwd file when it exists and
// is executable, else fallback when that is, else "".
func loginShell(passwd, fallback string) string {
	if sh := passwdShell(passwd, loginUser); sh != "" && isExecutable(sh) {
		return sh
	}
	if fallback != "" && isExecutable(fallback) {
		return fallback
	}
	return ""
}

// passwdShell returns the shell field of user's line in the passwd file.
func passwdShell(passwd, user string) string {
	f, err := os.Open(passwd)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 7 && fields[0] == user {
			return strings.TrimSpace(fields[6])
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// sessionEnv builds a session's environment: defaults, then extra (the
// agent's Config.Env), then the client's env requests; later entries win.
func sessionEnv(home, shell, term string, extra, client []string) []string {
	env := []string{
		"HOME=" + home,
		"USER=" + loginUser,
		"LOGNAME=" + loginUser,
		"PATH=" + defaultPath,
	}
	if shell != "" {
		env = append(env, "SHELL="+shell)
	}
	if term != "" {
		env = append(env, "TERM="+term)
	}
	env = append(env, extra...)
	env = append(env, client...)
	return dedupEnv(env)
}

// dedupEnv keeps the last value of each variable, in first-seen order.
func dedupEnv(env []string) []string {
	index := map[string]int{}
	var out []string
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		if i, seen := index[name]; seen {
			out[i] = kv
			continue
		}
		index[name] = len(out)
		out = append(out, kv)
	}
	return out
}

// envValue returns name's value in env.
func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}

// buildCommand returns the process for a session: cmdline run by shell -c,
// or an interactive login shell when cmdline is empty. Without a shell the
// command line is split on spaces and run directly, found in env's PATH.
func buildCommand(shell, cmdline, dir string, env []string) (*exec.Cmd, error) {
	cmd := &exec.Cmd{Dir: dir, Env: env}
	if _, err := os.Stat(dir); err != nil {
		cmd.Dir = "/"
	}
	switch {
	case shell != "" && cmdline == "":
		cmd.Path = shell
		cmd.Args = []string{"-" + filepath.Base(shell)} // a login shell
	case shell != "":
		cmd.Path = shell
		cmd.Args = []string{filepath.Base(shell), "-c", cmdline}
	case cmdline == "":
		return nil, errNoShell
	default:
		argv := strings.Fields(cmdline)
		if len(argv) == 0 {
			return nil, errors.New("empty command")
		}
		path, err := lookPath(argv[0], envValue(env, "PATH"))
		if err != nil {
			return nil, err
		}
		cmd.Path = path
		cmd.Args = argv
	}
	return cmd, nil
}

// lookPath finds name in path (a PATH value) like a shell would.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if isExecutable(name) {
			return name, nil
		}
		return "", &errNotFound{name: name}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", &errNotFound{name: name}
}

// startFailureStatus maps a failure to start a process to the exit status
// a shell would give.
func startFailureStatus(err error) int {
	var nf *errNotFound
	if errors.As(err, &nf) || errors.Is(err, errNoShell) || errors.Is(err, fs.ErrNotExist) {
		return exitNotFound
	}
	return 126
}

// exitCode turns a wait status into an exit code and, for a death by
// signal, the signal's SSH name ("TERM").
func exitCode(ws syscall.WaitStatus) (code int, signal string, core bool) {
	if ws.Signaled() {
		name := strings.TrimPrefix(unixSignalName(ws.Signal()), "SIG")
		return 128 + int(ws.Signal()), name, ws.CoreDump()
	}
	return ws.ExitStatus(), "", false
}

func unixSignalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("SIG%d", int(sig))
}
