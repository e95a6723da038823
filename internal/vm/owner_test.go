package vm

import (
	"context"
	"testing"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/model"
)

// TestImplicitKernelIsOneTheCallerMayUse: an image naming no kernel boots
// the default kernel only when the caller may use it; another user's private
// kernel of that name is never picked.
func TestImplicitKernelIsOneTheCallerMayUse(t *testing.T) {
	m, st, _ := newTestManager(t, &fakeBackend{}) // holds root's kernel "k1"
	ctx := context.Background()
	st.InsertKernel(ctx, api.KernelEntry{Name: "debian-12-cloud", OwnerUID: 1002})
	img := model.Image{Name: "plain"}
	as := func(uid int) context.Context { return authz.WithCaller(ctx, authz.Caller{UID: uid}) }
	for _, tc := range []struct {
		uid  int
		want string
	}{{1001, "k1"}, {1002, "debian-12-cloud"}, {0, "debian-12-cloud"}} {
		got, err := m.kernelFor(as(tc.uid), img)
		if err != nil || got != tc.want {
			t.Errorf("uid %d: kernel %q, %v; want %q", tc.uid, got, err, tc.want)
		}
	}
}

// TestCreateOperationHasTheCallerAsOwner: the operation and the VM record the
// caller, so the server's door can keep create-status to its owner.
func TestCreateOperationHasTheCallerAsOwner(t *testing.T) {
	m, st, _ := newTestManager(t, &fakeBackend{})
	ctx := authz.WithCaller(context.Background(), authz.Caller{UID: 1001, GID: 1001})
	op, err := m.Create(ctx, api.VMCreateParams{Name: "own", ImageName: "img", NoStart: true})
	if err != nil {
		t.Fatal(err)
	}
	waitOp(t, m, op.ID)
	stored, err := st.GetOperation(ctx, op.ID)
	if err != nil || op.OwnerUID != 1001 || stored.OwnerUID != 1001 {
		t.Fatalf("operation owner %d, stored %d (%v)", op.OwnerUID, stored.OwnerUID, err)
	}
	if vm, _ := st.GetVM(ctx, "own"); vm.OwnerUID != 1001 {
		t.Fatalf("vm owner %d", vm.OwnerUID)
	}
}
