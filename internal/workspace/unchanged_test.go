package workspace

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/api"
)

// archiveSpy plays the guest and counts what its archives hold. ctime, when
// set, replaces the change-time bound export asks for (a guest that
// misjudges or lies about which files are unchanged).
type archiveSpy struct {
	testGuest
	ctime          int64
	asked          []*proto.Unchanged
	headers, full  int
	unchangedPaths []string
}

func (g *archiveSpy) Archive(ctx context.Context, dir string, exclude []string, unchanged *proto.Unchanged, w io.Writer) error {
	g.asked = append(g.asked, unchanged)
	if unchanged != nil && g.ctime != 0 {
		u := *unchanged
		u.CtimeUnixNano = g.ctime
		unchanged = &u
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := g.testGuest.Archive(ctx, dir, exclude, unchanged, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	tr := tar.NewReader(io.TeeReader(pr, w))
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if _, ok := hdr.PAXRecords[proto.PAXUnchanged]; ok {
			g.headers++
			g.unchangedPaths = append(g.unchangedPaths, hdr.Name)
		} else {
			g.full++
		}
	}
	_, err := io.Copy(w, pr)
	pr.CloseWithError(errors.New("reader gone"))
	if err := <-done; err != nil {
		return err
	}
	return err
}

// prepareSmall prepares a repository of a few plain files and returns the
// service, state folder, guest folder and prepared mtime.
func prepareSmall(t *testing.T) (*Service, string, string) {
	t.Helper()
	s := newTestService(t)
	repo := filepath.Join(t.TempDir(), "small")
	git(t, filepath.Dir(repo), "init", "-q", repo)
	for _, f := range []string{"a.txt", "b.sh", "c/d.txt", "c/e.txt", "f.txt"} {
		write(t, filepath.Join(repo, f), "content of "+f+"\n", 0o644)
	}
	symlink(t, "a.txt", filepath.Join(repo, "link"))
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "small")
	state := t.TempDir()
	ws := filepath.Join(t.TempDir(), "ws")
	if _, err := s.Prepare(context.Background(), noGitGuest(t), state, Caller{}, api.VMWorkspacePrepareParams{SourcePath: repo, GuestPath: ws}, "vm"); err != nil {
		t.Fatal(err)
	}
	return s, state, ws
}

func TestExportSkipsUnchangedFiles(t *testing.T) {
	ctx := context.Background()
	s, state, ws := prepareSmall(t)
	rec, _, err := loadState(state, ws)
	if err != nil || rec.FileMtime == 0 || rec.GuestDone == 0 {
		t.Fatalf("record without the prepare stamps: %+v %v", rec, err)
	}
	// Nothing changed: no content crosses, no patch.
	spy := &archiveSpy{testGuest: noGitGuest(t)}
	exp, err := exportAll(s, ctx, spy, state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil || exp.HasChanges {
		t.Fatalf("untouched workspace: %v %+v", err, exp)
	}
	if spy.asked[0] == nil || spy.headers != 5 || spy.full != 0 {
		t.Fatalf("untouched workspace: asked %+v, %d headers only, %d in full; want 5, 0", spy.asked[0], spy.headers, spy.full)
	}

	// A content edit, a mode-only change, a deletion, a rename and a new
	// file: only those cross in full, and the patch is the one a full
	// archive gives.
	write(t, filepath.Join(ws, "a.txt"), "edited in the guest\n", 0o644)
	if err := os.Chmod(filepath.Join(ws, "b.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(ws, "f.txt"))
	if err := os.Rename(filepath.Join(ws, "c/e.txt"), filepath.Join(ws, "c/moved.txt")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(ws, "new.txt"), "new\n", 0o644)
	spy = &archiveSpy{testGuest: noGitGuest(t)}
	exp, err = exportAll(s, ctx, spy, state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil {
		t.Fatal(err)
	}
	if spy.headers != 1 || spy.full != 4 || spy.unchangedPaths[0] != "c/d.txt" {
		t.Fatalf("%d headers only (%v), %d in full; want c/d.txt alone unchanged, 4 in full", spy.headers, spy.unchangedPaths, spy.full)
	}
	patch := string(exp.Patch)
	for _, want := range []string{"old mode 100644\nnew mode 100755", "+edited in the guest", "deleted file mode 100644", "rename from c/e.txt", "new file mode 100644"} {
		if !strings.Contains(patch, want) {
			t.Errorf("patch lacks %q:\n%s", want, patch)
		}
	}
	fullRec, dir, _ := loadState(state, ws)
	fullRec.GuestDone = 0 // a record of an earlier version: every file in full
	if err := writeRecord(dir, fullRec); err != nil {
		t.Fatal(err)
	}
	spy = &archiveSpy{testGuest: noGitGuest(t)}
	full, err := exportAll(s, ctx, spy, state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil || string(full.Patch) != patch || spy.asked[0] != nil || spy.headers != 0 {
		t.Fatalf("full export differs or skipped files (%v, %d headers):\n%s\nwant:\n%s", err, spy.headers, full.Patch, patch)
	}
}

// A guest that says a file it changed is unchanged (here: content edited
// with the size and mtime kept, and the guest's change-time bound pushed to
// the far future) hides only its own edit: export reports the prepared
// content for it. A file it so reports that is not the prepared one (its
// size differs) makes export read every file in full.
func TestExportGuestClaimsUnchanged(t *testing.T) {
	ctx := context.Background()
	s, state, ws := prepareSmall(t)
	rec, _, err := loadState(state, ws)
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(0, rec.FileMtime)
	write(t, filepath.Join(ws, "a.txt"), "CONTENT OF A.TXT\n", 0o644) // same size
	if err := os.Chtimes(filepath.Join(ws, "a.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	liar := &archiveSpy{testGuest: noGitGuest(t), ctime: math.MaxInt64}
	exp, err := exportAll(s, ctx, liar, state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil || exp.HasChanges || liar.headers != 5 {
		t.Fatalf("guest claiming all unchanged: %v %+v (%d headers only)", err, exp, liar.headers)
	}

	write(t, filepath.Join(ws, "c/d.txt"), "longer content of c/d.txt\n", 0o644)
	if err := os.Chtimes(filepath.Join(ws, "c/d.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	liar = &archiveSpy{testGuest: noGitGuest(t), ctime: math.MaxInt64}
	exp, err = exportAll(s, ctx, liar, state, Caller{}, api.WorkspaceExportParams{GuestPath: ws})
	if err != nil {
		t.Fatal(err)
	}
	if len(liar.asked) != 2 || liar.asked[1] != nil {
		t.Fatalf("export asked %+v; want a second archive without skipping", liar.asked)
	}
	if len(exp.ChangedFiles) != 2 || !strings.Contains(string(exp.Patch), "+CONTENT OF A.TXT") || !strings.Contains(string(exp.Patch), "+longer content") {
		t.Fatalf("full re-read: %v\n%s", exp.ChangedFiles, exp.Patch)
	}
}

// A file sent as unchanged when export did not ask for that is refused
// clearly, and one sent for a path prepare gave as a symlink is never read
// from the store as a file.
func TestReadGuestTarUnchangedRefused(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t)
	st, cleanup, err := openScratchStore(ctx, mustRunner(t, s), t.TempDir(), "t-")
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	st.format = "sha1"
	var buf strings.Builder
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "link", Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX,
		PAXRecords: map[string]string{proto.PAXUnchanged: "5"}})
	tw.Close()
	_, err = st.readGuestTar(ctx, t.TempDir(), strings.NewReader(buf.String()), DefaultLimits(), nil)
	if err == nil || !strings.Contains(err.Error(), "not asked for") {
		t.Fatalf("unasked unchanged file: %v", err)
	}
	base := &baseline{load: func() ([]treeEntry, error) {
		return []treeEntry{{mode: "120000", typ: "blob", oid: strings.Repeat("1", 40), size: 5, path: "link"}}, nil
	}}
	_, err = st.readGuestTar(ctx, t.TempDir(), strings.NewReader(buf.String()), DefaultLimits(), base)
	if !errors.Is(err, errNotPrepared) {
		t.Fatalf("unchanged file over a prepared symlink: %v", err)
	}
}

func mustRunner(t *testing.T, s *Service) *gitRunner {
	t.Helper()
	g, err := newGitRunner(s.gitBin(), Caller{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}
