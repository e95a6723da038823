package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/model"
)

// Prepare copies the host repository p.SourcePath into the guest at
// p.GuestPath (default /root/<repo name>) and records the prepare-time state
// in stateDir, the VM's workspace state folder. Host git commands run as
// caller; the host repository is only read.
func (s *Service) Prepare(ctx context.Context, g Guest, stateDir string, caller Caller, p api.VMWorkspacePrepareParams, vmName string) (model.WorkspacePrepareResult, error) {
	var res model.WorkspacePrepareResult
	clock := newStageClock()
	mode := p.Mode
	if mode == "" {
		mode = ModeWorktree
	}
	if mode != ModeWorktree && mode != ModeCommit {
		return res, api.Errorf(api.ErrInvalid, "unknown workspace mode %q (want %s or %s)", p.Mode, ModeWorktree, ModeCommit)
	}
	if mode == ModeCommit && p.IncludeUntracked {
		return res, api.Errorf(api.ErrInvalid, "include untracked needs mode %s", ModeWorktree)
	}
	if p.SourcePath == "" || !filepath.IsAbs(p.SourcePath) {
		return res, api.Errorf(api.ErrInvalid, "source path %q must be an absolute path", p.SourcePath)
	}
	git, err := newGitRunner(s.gitBin(), caller)
	if err != nil {
		return res, err
	}
	if p.Branch != "" {
		if err := git.checkBranch(ctx, p.Branch); err != nil {
			return res, err
		}
	}
	st, cleanup, err := openScratchStore(ctx, git, stateDir, "banger-workspace-")
	if err != nil {
		return res, err
	}
	defer cleanup()
	src, err := st.openRepo(ctx, p.SourcePath)
	if err != nil {
		return res, err
	}
	guestPath := p.GuestPath
	if guestPath == "" {
		guestPath = "/root/" + filepath.Base(src.top)
	}
	if guestPath, err = cleanGuestPath(guestPath); err != nil {
		return res, err
	}
	base, err := st.resolveCommit(ctx, src.top, p.From)
	if err != nil {
		return res, err
	}
	tree, err := st.stateTree(ctx, src.top, base, mode == ModeWorktree, p.IncludeUntracked)
	if err != nil {
		return res, fmt.Errorf("prepare %s: %w", src.top, err)
	}
	entries, err := st.lsTree(ctx, src.top, tree)
	if err != nil {
		return res, err
	}
	files, total, err := checkTree(entries, s.limits())
	if err != nil {
		return res, err
	}
	clock.mark("snapshot")

	probe, err := g.Probe(ctx, guestPath)
	if err != nil {
		return res, guestErr(err, "inspect "+guestPath)
	}
	hasGit := probe.Git
	if probe.State == proto.PathNonEmpty {
		if _, _, err := loadState(stateDir, guestPath); err != nil {
			return res, api.Errorf(api.ErrConflict, "guest path %s already exists and is not an earlier workspace", guestPath)
		}
	}
	gitDir := ""
	if hasGit {
		if gitDir, err = st.guestRepo(ctx, src, base, p.Branch); err != nil {
			return res, err
		}
	}
	rec := record{
		VMName: vmName, SourcePath: src.top, GuestPath: guestPath, BaseCommit: base,
		PrepareTree: tree, Branch: p.Branch, Mode: mode, IncludeUntracked: p.IncludeUntracked,
		ObjectFormat: st.format, Alternates: st.alts, FileCount: files, Bytes: total,
		PreparedAt: time.Now().UTC(),
	}
	// Whole seconds: the tar header keeps them exactly.
	mtime := rec.PreparedAt.Truncate(time.Second)
	rec.FileMtime = mtime.UnixNano()
	excludes, err := st.readExcludes(ctx, src.top)
	if err != nil {
		// git itself goes on without an unreadable ignore file.
		s.log.Warn("workspace ignore rules not recorded", "source", src.top, "err", err)
	}
	staged, err := stageState(stateDir, rec, st.packs, excludes)
	if err != nil {
		return res, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(staged)
		}
	}()
	clock.mark("state")
	sum, err := s.sendTree(ctx, g, st, src.top, entries, gitDir, guestPath, mtime)
	if err != nil {
		// The guest folder was replaced: whatever was there is gone.
		g.Remove(context.WithoutCancel(ctx), guestPath)
		return res, errors.Join(err, dropState(stateDir, guestPath))
	}
	clock.mark("send")
	if sum.DoneUnixNano > 0 {
		rec.GuestDone = sum.DoneUnixNano
		if err := writeRecord(staged, rec); err != nil {
			return res, err
		}
	}
	if err := commitState(stateDir, staged, guestPath); err != nil {
		return res, err
	}
	ok = true
	s.log.Info("workspace prepared", append([]any{"vm", vmName, "source", src.top, "guest_path", guestPath,
		"base", base, "mode", mode, "files", files, "bytes", total, "guest_git", hasGit}, clock.attrs...)...)
	return model.WorkspacePrepareResult{
		VMName: vmName, SourcePath: src.top, GuestPath: guestPath, BaseCommit: base,
		Branch: p.Branch, Mode: mode, IncludeUntracked: p.IncludeUntracked,
		FileCount: files, Bytes: total, PreparedAt: rec.PreparedAt,
	}, nil
}

// sendTree replaces guestPath in the guest by the files of entries (and the
// .git directory gitDir when set), streamed as a tar to the agent, every
// file with modification time mtime.
func (s *Service) sendTree(ctx context.Context, g Guest, st *store, dir string, entries []treeEntry, gitDir, guestPath string, mtime time.Time) (proto.Extracted, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := st.writeTar(ctx, dir, entries, gitDir, mtime, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	// The guest refreshes its git index after extracting, so the first git
	// status is fast.
	sum, runErr := g.Extract(ctx, guestPath, pr, gitDir != "")
	pr.CloseWithError(errors.New("guest stopped reading"))
	cancel()
	tarErr := <-done
	if runErr != nil {
		return sum, guestErr(runErr, "copy workspace to "+guestPath)
	}
	if tarErr != nil && !errors.Is(tarErr, errTarTrailer) {
		return sum, fmt.Errorf("copy workspace to %s: %w", guestPath, tarErr)
	}
	return sum, nil
}
