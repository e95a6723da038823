package kernel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"banger/internal/api"
	"banger/internal/authz"
)

// TestCommitRecordsOwnerAndGuardsReplace: a kernel is recorded with its
// caller as owner, and replacing one is decided again at commit (the server's
// door ran earlier): a user may not replace root's kernel, root may.
func TestCommitRecordsOwnerAndGuardsReplace(t *testing.T) {
	s, st, dir := newTestService(t, nil)
	alice := authz.WithCaller(context.Background(), authz.Caller{UID: 1001, GID: 1001})
	root := authz.WithCaller(context.Background(), authz.Caller{UID: 0})
	built := func() string { return builtKernel(t, s) }
	if err := s.commit(root, built(), api.KernelEntry{Name: "shared"}, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.commit(alice, built(), api.KernelEntry{Name: "mine"}, false, nil); err != nil {
		t.Fatal(err)
	}
	if st.rows["shared"].OwnerUID != 0 || st.rows["mine"].OwnerUID != 1001 {
		t.Fatalf("owners: shared %d, mine %d", st.rows["shared"].OwnerUID, st.rows["mine"].OwnerUID)
	}
	w := built()
	err := s.commit(alice, w, api.KernelEntry{Name: "shared", Source: "alice's"}, true, nil)
	if !errors.Is(err, api.ErrPermission) {
		t.Fatalf("alice replaced root's kernel: %v", err)
	}
	os.RemoveAll(w)
	if st.rows["shared"].Source == "alice's" {
		t.Fatal("row replaced")
	}
	assertEmpty(t, dir, st, "shared", "mine")
	if err := s.commit(alice, built(), api.KernelEntry{Name: "mine", Source: "again"}, true, nil); err != nil {
		t.Fatalf("alice replacing her own kernel: %v", err)
	}
	if err := s.commit(root, built(), api.KernelEntry{Name: "mine", Source: "root"}, true, nil); err != nil {
		t.Fatalf("root replacing alice's kernel: %v", err)
	}
}

// TestOnStoredRunsAfterEachStoredKernel: the hook runs once per kernel
// stored, with the row already readable and the service's lock released,
// and not for a commit that was refused; what it reports reaches the
// request's progress.
func TestOnStoredRunsAfterEachStoredKernel(t *testing.T) {
	s, st, _ := newTestService(t, nil)
	calls := 0
	s.OnStored(func(ctx context.Context, progress func(api.ProgressEvent)) {
		calls++
		progress(api.ProgressEvent{Phase: "hook"})
		if _, ok := st.rows["k"]; !ok {
			t.Error("hook ran before the kernel's row was stored")
		}
		if !s.mu.TryLock() {
			t.Error("hook ran with the service's lock held")
		} else {
			s.mu.Unlock()
		}
	})
	built := func() string { return builtKernel(t, s) }
	ctx := context.Background()
	var seen []string
	progress := func(ev api.ProgressEvent) { seen = append(seen, ev.Phase) }
	if err := s.commit(ctx, built(), api.KernelEntry{Name: "k"}, false, progress); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "hook" {
		t.Errorf("progress of the commit: %v, want the hook's one event", seen)
	}
	w := built()
	if err := s.commit(ctx, w, api.KernelEntry{Name: "k"}, false, progress); !errors.Is(err, api.ErrExists) {
		t.Fatalf("second commit of k: %v, want ErrExists", err)
	}
	os.RemoveAll(w)
	if calls != 1 {
		t.Fatalf("hook ran %d times for one stored kernel and one refused, want 1", calls)
	}
}

// builtKernel is a finished work folder holding a kernel image, ready to
// commit.
func builtKernel(t *testing.T, s *Service) string {
	t.Helper()
	w, err := s.workDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w, "vmlinuz"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}
