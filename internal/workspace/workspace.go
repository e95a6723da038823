// Package workspace copies a host git repository into a VM (prepare) and
// brings the guest's edits back as a `git diff --binary` patch (export).
//
// The host repository is only ever read: every git command that looks at it
// runs as the calling user with a temporary index (GIT_INDEX_FILE) and a
// temporary object directory (GIT_OBJECT_DIRECTORY, with the repository's
// objects as alternates). Git is never asked to write an object the host
// repository can see, since it would "freshen" (touch) the host's copy:
// trees are built here and only missing objects are written (tree.go). The
// prepare-time state is recorded on the host in a per-VM state folder, so
// export never trusts the guest for its baseline.
package workspace

import (
	"context"
	"io"
	"log/slog"
)

// DefaultAgentPath is where every banger guest has its agent binary.
const DefaultAgentPath = "/run/banger/banger-agent"

// Mode names accepted in VMWorkspacePrepareParams.Mode.
const (
	ModeWorktree = "worktree"
	ModeCommit   = "commit"
)

// Guest runs commands inside a VM.
type Guest interface {
	// Run runs a shell command in the guest, as root, wiring stdin/stdout/stderr; returns the exit code.
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

// Caller is the user on whose behalf host-side git commands run. The zero
// value is root.
type Caller struct {
	UID, GID int
}

// Limits bound what prepare copies and export accepts. A zero field means the
// default.
type Limits struct {
	MaxFiles      int   // files (including symlinks) in a workspace
	MaxFileBytes  int64 // size of one file
	MaxTotalBytes int64 // sum of all file sizes
	MaxPatchBytes int64 // size of an exported patch
}

// DefaultLimits returns the documented workspace limits: 200,000 files,
// 1 GiB per file, 2 GiB in total, 2 GiB of patch.
func DefaultLimits() Limits {
	return Limits{
		MaxFiles:      200_000,
		MaxFileBytes:  1 << 30,
		MaxTotalBytes: 2 << 30,
		MaxPatchBytes: 2 << 30,
	}
}

func (l Limits) withDefaults() Limits {
	defaultLimits := DefaultLimits()
	if l.MaxFiles <= 0 {
		l.MaxFiles = defaultLimits.MaxFiles
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = defaultLimits.MaxFileBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = defaultLimits.MaxTotalBytes
	}
	if l.MaxPatchBytes <= 0 {
		l.MaxPatchBytes = defaultLimits.MaxPatchBytes
	}
	return l
}

// Service prepares and exports workspaces. Set the exported fields before
// first use; they are not changed afterwards.
type Service struct {
	// AgentPath is the guest agent binary (tar-x / tar-c subcommands).
	AgentPath string
	// Git is the host git binary.
	Git string
	// Limits bound workspace sizes.
	Limits Limits

	log *slog.Logger
}

// New returns a Service with the default agent path, git and limits.
func New(log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{AgentPath: DefaultAgentPath, Git: "git", Limits: DefaultLimits(), log: log}
}

func (s *Service) limits() Limits { return s.Limits.withDefaults() }

func (s *Service) agent() string {
	if s.AgentPath == "" {
		return DefaultAgentPath
	}
	return s.AgentPath
}

func (s *Service) gitBin() string {
	if s.Git == "" {
		return "git"
	}
	return s.Git
}
