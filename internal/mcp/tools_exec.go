package mcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ExecInput are vm_exec's arguments.
type ExecInput struct {
	VM             string            `json:"vm" jsonschema:"the VM's name or id"`
	Command        []string          `json:"command,omitempty" jsonschema:"the program and its arguments (argv, no shell); give this or shell"`
	Shell          string            `json:"shell,omitempty" jsonschema:"a shell command line run with sh -c; give this or command"`
	Cwd            string            `json:"cwd,omitempty" jsonschema:"working folder in the guest (default /root)"`
	Env            map[string]string `json:"env,omitempty" jsonschema:"extra environment variables"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty" jsonschema:"kill the command after this many seconds (default 600; not for background jobs)"`
	Background     bool              `json:"background,omitempty" jsonschema:"start the command detached and return a job id at once; read it with vm_job_output"`
}

// ExecResult is a finished command (or a started job).
type ExecResult struct {
	ExitCode        int    `json:"exit_code" jsonschema:"the command's exit status (128+N when killed by signal N; -1 on timeout)"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutBytes     int64  `json:"stdout_bytes" jsonschema:"total bytes the command wrote to stdout"`
	StderrBytes     int64  `json:"stderr_bytes" jsonschema:"total bytes the command wrote to stderr"`
	StdoutTruncated bool   `json:"stdout_truncated,omitempty" jsonschema:"stdout was longer than the cap: its middle was left out"`
	StderrTruncated bool   `json:"stderr_truncated,omitempty" jsonschema:"stderr was longer than the cap: its middle was left out"`
	TimedOut        bool   `json:"timed_out,omitempty" jsonschema:"the command was killed at the timeout"`
	JobID           string `json:"job_id,omitempty" jsonschema:"the background job's id"`
}

// JobRef names a background job.
type JobRef struct {
	VM    string `json:"vm" jsonschema:"the VM's name or id"`
	JobID string `json:"job_id" jsonschema:"the id vm_exec returned"`
}

// JobOutputInput are vm_job_output's arguments.
type JobOutputInput struct {
	VM           string `json:"vm" jsonschema:"the VM's name or id"`
	JobID        string `json:"job_id" jsonschema:"the id vm_exec returned"`
	StdoutOffset int64  `json:"stdout_offset,omitempty" jsonschema:"read stdout from this byte (pass the previous stdout_next_offset to read only new output)"`
	StderrOffset int64  `json:"stderr_offset,omitempty" jsonschema:"read stderr from this byte"`
}

// JobOutput is a job's state and output from the offsets asked for.
type JobOutput struct {
	JobID            string `json:"job_id"`
	State            string `json:"state" jsonschema:"running, exited or killed"`
	ExitCode         *int   `json:"exit_code,omitempty" jsonschema:"the exit status once exited"`
	Stdout           string `json:"stdout"`
	Stderr           string `json:"stderr"`
	StdoutNextOffset int64  `json:"stdout_next_offset"`
	StderrNextOffset int64  `json:"stderr_next_offset"`
	StdoutBytes      int64  `json:"stdout_bytes" jsonschema:"stdout's size so far"`
	StderrBytes      int64  `json:"stderr_bytes" jsonschema:"stderr's size so far"`
}

// JobKillInput are vm_job_kill's arguments.
type JobKillInput struct {
	VM     string `json:"vm" jsonschema:"the VM's name or id"`
	JobID  string `json:"job_id" jsonschema:"the id vm_exec returned"`
	Signal string `json:"signal,omitempty" jsonschema:"TERM (default), KILL, INT or HUP"`
}

// JobKillResult says which signal went to the job's process group.
type JobKillResult struct {
	JobID  string `json:"job_id"`
	Signal string `json:"signal"`
}

var (
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	jobID   = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

func (s *server) addExecTools(ms *mcp.Server) {
	addTool(ms, "vm_exec", "Run command", "Run a command in a VM as root (argv in command, or a shell line in shell). stdout and stderr are each capped; a longer stream keeps its start and end and says how much was left out. background: true returns a job id at once.", destructive, s.exec)
	addTool(ms, "vm_job_output", "Job output", "Read a background job's state and output (from offsets, for incremental reads).", readOnly, s.jobOutput)
	addTool(ms, "vm_job_kill", "Kill job", "Send a signal to a background job's whole process group.", destructive, s.jobKill)
}

// commandLine builds the guest shell line for in (without background).
func commandLine(in ExecInput) (string, error) {
	if (len(in.Command) == 0) == (in.Shell == "") {
		return "", errors.New("give exactly one of command (argv) or shell")
	}
	var b strings.Builder
	if in.Cwd != "" {
		cwd := in.Cwd
		if strings.HasPrefix(cwd, "-") {
			cwd = "./" + cwd
		}
		fmt.Fprintf(&b, "cd %s || exit 126; ", shellQuote(cwd))
	}
	keys := make([]string, 0, len(in.Env))
	for k := range in.Env {
		if !envName.MatchString(k) {
			return "", fmt.Errorf("env: %q is not a valid variable name", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s; ", k, shellQuote(in.Env[k]))
	}
	if in.Shell != "" {
		b.WriteString("exec sh -c " + shellQuote(in.Shell))
	} else {
		b.WriteString("exec " + shellJoin(in.Command))
	}
	return b.String(), nil
}

func (s *server) exec(ctx context.Context, _ *mcp.CallToolRequest, in ExecInput) (ExecResult, error) {
	line, err := commandLine(in)
	if err != nil {
		return ExecResult{}, err
	}
	g, err := s.Guests.Open(ctx, in.VM)
	if err != nil {
		return ExecResult{}, err
	}
	if in.Background {
		return s.startJob(ctx, g, line)
	}
	timeout := 10 * time.Minute
	if in.TimeoutSeconds > 0 {
		timeout = time.Duration(in.TimeoutSeconds) * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stdout, stderr := newCapBuffer(s.OutputCap), newCapBuffer(s.OutputCap)
	code, err := g.Run(rctx, line, stdout, stderr)
	var res ExecResult
	if err != nil {
		if ctx.Err() != nil || rctx.Err() == nil {
			return res, err
		}
		res.TimedOut, code = true, -1
	}
	res.ExitCode = code
	res.Stdout, res.StdoutBytes, res.StdoutTruncated = stdout.Result()
	res.Stderr, res.StderrBytes, res.StderrTruncated = stderr.Result()
	return res, nil
}

// startJob starts line detached in the guest. The launching shell is a
// process group leader (the guest agent starts every command in its own
// session) and exits at once; the job stays in that group, so the group id
// names the job for kill. Output goes to files in the job folder.
func (s *server) startJob(ctx context.Context, g Guest, line string) (ExecResult, error) {
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	dir := shellQuote(s.JobDir)
	script := fmt.Sprintf(`D=%s; mkdir -p "$D" && echo $$ >"$D/%s.pgid" || exit 1; { (%s) </dev/null >"$D/%[2]s.out" 2>"$D/%[2]s.err"; echo $? >"$D/%[2]s.rc.tmp" && mv -f "$D/%[2]s.rc.tmp" "$D/%[2]s.rc"; } </dev/null >/dev/null 2>&1 &`,
		dir, id, line)
	var errOut bytes.Buffer
	// sh whatever root's login shell is: $$ and the group need a POSIX shell.
	code, err := g.Run(ctx, "exec /bin/sh -c "+shellQuote(script), nil, &limitWriter{w: &errOut, n: 4096})
	if err != nil {
		return ExecResult{}, err
	}
	if code != 0 {
		return ExecResult{}, fmt.Errorf("start background job: exit %d: %s", code, strings.TrimSpace(errOut.String()))
	}
	return ExecResult{JobID: id}, nil
}

func (s *server) jobFile(id, ext string) string { return path.Join(s.JobDir, id+"."+ext) }

// jobPGID reads the job's process group id.
func (s *server) jobPGID(g Guest, id string) (int, error) {
	data, _, err := g.ReadFile(s.jobFile(id, "pgid"), 0, 32)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("job %s not found", id)
	}
	if err != nil {
		return 0, fmt.Errorf("read job %s: %w", id, err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pgid <= 1 {
		return 0, fmt.Errorf("job %s: bad process group %q", id, strings.TrimSpace(string(data)))
	}
	return pgid, nil
}

func (s *server) jobOutput(ctx context.Context, _ *mcp.CallToolRequest, in JobOutputInput) (JobOutput, error) {
	if !jobID.MatchString(in.JobID) {
		return JobOutput{}, fmt.Errorf("job id %q is not a job id", in.JobID)
	}
	if in.StdoutOffset < 0 || in.StderrOffset < 0 {
		return JobOutput{}, errors.New("offsets must not be negative")
	}
	g, err := s.Guests.Open(ctx, in.VM)
	if err != nil {
		return JobOutput{}, err
	}
	pgid, err := s.jobPGID(g, in.JobID)
	if err != nil {
		return JobOutput{}, err
	}
	out := JobOutput{JobID: in.JobID, State: "running"}
	// The state first: output read after "exited" is complete.
	if err := s.jobState(ctx, g, in.JobID, pgid, &out); err != nil {
		return out, err
	}
	read := func(ext string, off int64) (string, int64, int64, error) {
		data, size, err := g.ReadFile(s.jobFile(in.JobID, ext), off, int64(s.OutputCap))
		if errors.Is(err, fs.ErrNotExist) {
			return "", 0, 0, nil
		}
		return string(data), off + int64(len(data)), size, err
	}
	if out.Stdout, out.StdoutNextOffset, out.StdoutBytes, err = read("out", in.StdoutOffset); err != nil {
		return out, fmt.Errorf("read job %s stdout: %w", in.JobID, err)
	}
	if out.Stderr, out.StderrNextOffset, out.StderrBytes, err = read("err", in.StderrOffset); err != nil {
		return out, fmt.Errorf("read job %s stderr: %w", in.JobID, err)
	}
	return out, nil
}

// jobState sets out's state: exited (with the status the job's shell wrote
// before leaving), running while its process group lives, else killed.
func (s *server) jobState(ctx context.Context, g Guest, id string, pgid int, out *JobOutput) error {
	readRC := func() (bool, error) {
		rc, _, err := g.ReadFile(s.jobFile(id, "rc"), 0, 32)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read job %s: %w", id, err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(rc)))
		if err != nil {
			return false, fmt.Errorf("job %s: bad exit status %q", id, strings.TrimSpace(string(rc)))
		}
		out.State, out.ExitCode = "exited", &n
		return true, nil
	}
	if done, err := readRC(); done || err != nil {
		return err
	}
	code, err := g.Run(ctx, fmt.Sprintf("kill -0 -%d 2>/dev/null", pgid), nil, nil)
	if err != nil {
		return err
	}
	if code == 0 {
		out.State = "running"
		return nil
	}
	// The job may have written its status and left since the first look.
	if done, err := readRC(); done || err != nil {
		return err
	}
	out.State = "killed"
	return nil
}

func (s *server) jobKill(ctx context.Context, _ *mcp.CallToolRequest, in JobKillInput) (JobKillResult, error) {
	if !jobID.MatchString(in.JobID) {
		return JobKillResult{}, fmt.Errorf("job id %q is not a job id", in.JobID)
	}
	sig := strings.TrimPrefix(strings.ToUpper(in.Signal), "SIG")
	if sig == "" {
		sig = "TERM"
	}
	if sig != "TERM" && sig != "KILL" && sig != "INT" && sig != "HUP" {
		return JobKillResult{}, fmt.Errorf("signal %q: use TERM, KILL, INT or HUP", in.Signal)
	}
	g, err := s.Guests.Open(ctx, in.VM)
	if err != nil {
		return JobKillResult{}, err
	}
	pgid, err := s.jobPGID(g, in.JobID)
	if err != nil {
		return JobKillResult{}, err
	}
	// "kill -SIG -PGID" is understood by dash, bash and busybox ash alike
	// (busybox refuses "--" after signalling, so no fallback chain).
	code, err := g.Run(ctx, fmt.Sprintf("kill -%s -%d 2>/dev/null", sig, pgid), nil, nil)
	if err != nil {
		return JobKillResult{}, err
	}
	if code != 0 {
		return JobKillResult{}, fmt.Errorf("job %s is not running", in.JobID)
	}
	return JobKillResult{JobID: in.JobID, Signal: sig}, nil
}

// limitWriter keeps the first n bytes written to w and drops the rest.
type limitWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if k := min(l.n, len(p)); k > 0 {
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
