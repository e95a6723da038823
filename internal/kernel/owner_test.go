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
	built := func() string {
		w, err := s.workDir()
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(w, "vmlinuz"), []byte("k"), 0o644)
		return w
	}
	if err := s.commit(root, built(), api.KernelEntry{Name: "shared"}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.commit(alice, built(), api.KernelEntry{Name: "mine"}, false); err != nil {
		t.Fatal(err)
	}
	if st.rows["shared"].OwnerUID != 0 || st.rows["mine"].OwnerUID != 1001 {
		t.Fatalf("owners: shared %d, mine %d", st.rows["shared"].OwnerUID, st.rows["mine"].OwnerUID)
	}
	w := built()
	err := s.commit(alice, w, api.KernelEntry{Name: "shared", Source: "alice's"}, true)
	if !errors.Is(err, api.ErrPermission) {
		t.Fatalf("alice replaced root's kernel: %v", err)
	}
	os.RemoveAll(w)
	if st.rows["shared"].Source == "alice's" {
		t.Fatal("row replaced")
	}
	assertEmpty(t, dir, st, "shared", "mine")
	if err := s.commit(alice, built(), api.KernelEntry{Name: "mine", Source: "again"}, true); err != nil {
		t.Fatalf("alice replacing her own kernel: %v", err)
	}
	if err := s.commit(root, built(), api.KernelEntry{Name: "mine", Source: "root"}, true); err != nil {
		t.Fatalf("root replacing alice's kernel: %v", err)
	}
}
