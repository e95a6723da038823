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

	"banger/internal/agent/proto"
)

// Mode names accepted in VMWorkspacePrepareParams.Mode.
const (
	ModeWorktree = "worktree"
	ModeCommit   = "commit"
)

// Guest is a VM's agent as the workspace uses it: typed ops on guest
// folders (guest.Client implements it; agenttest.Local plays it on the
// host's files). What comes back is the guest's and bounded here.
type Guest interface {
	// Probe says whether dir is absent, an empty directory or anything
	// else, and whether the guest has git.
	Probe(ctx context.Context, dir string) (proto.Probe, error)
	// Extract replaces dir by the tar stream r; with gitRefresh the guest
	// then refreshes dir's git index (best effort).
	Extract(ctx context.Context, dir string, r io.Reader, gitRefresh bool) (proto.Extracted, error)
	// Archive writes a tar of dir to w, leaving out what matches exclude;
	// it fails unless the guest says the archive is complete. With
	// unchanged set, files the guest says are as prepare left them come as
	// headers only (proto.Unchanged).
	Archive(ctx context.Context, dir string, exclude []string, unchanged *proto.Unchanged, w io.Writer) error
	// Remove removes dir and everything below it.
	Remove(ctx context.Context, dir string) error
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
	// Git is the host git binary.
	Git string
	// Limits bound workspace sizes.
	Limits Limits

	log *slog.Logger
}

// New returns a Service with the default git and limits.
func New(log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{Git: "git", Limits: DefaultLimits(), log: log}
}

func (s *Service) limits() Limits { return s.Limits.withDefaults() }

func (s *Service) gitBin() string {
	if s.Git == "" {
		return "git"
	}
	return s.Git
}
