package authz

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"banger/internal/api"
)

// TestDecide is the policy's whole table: caller x kind x owner x verb.
func TestDecide(t *testing.T) {
	const root, alice, bob = 0, 1001, 1002
	type row struct {
		caller, owner int
		kind          Kind
		allow         [3]bool // See, Use, Change
	}
	all, none, useOnly := [3]bool{true, true, true}, [3]bool{}, [3]bool{true, true, false}
	rows := []row{
		// root may do everything, to anyone's objects.
		{root, root, VM, all}, {root, alice, VM, all}, {root, alice, Image, all},
		{root, alice, Kernel, all}, {root, alice, Operation, all}, {root, root, Kernel, all},
		// owners may do everything to their own objects.
		{alice, alice, VM, all}, {alice, alice, Image, all}, {alice, alice, Kernel, all}, {alice, alice, Operation, all},
		// another user's objects: nothing.
		{bob, alice, VM, none}, {bob, alice, Image, none}, {bob, alice, Kernel, none}, {bob, alice, Operation, none},
		// root's images and kernels are shared: seen and used, not changed.
		{alice, root, Image, useOnly}, {alice, root, Kernel, useOnly},
		// root's VMs and operations are root's alone.
		{alice, root, VM, none}, {alice, root, Operation, none},
	}
	for _, r := range rows {
		for v, want := range r.allow {
			name := fmt.Sprintf("uid%d/%s-of-uid%d/verb%d", r.caller, r.kind, r.owner, v)
			err := Decide(Caller{UID: r.caller}, Verb(v), Object{Kind: r.kind, Name: "x", Owner: r.owner})
			if want && err != nil {
				t.Errorf("%s: refused: %v", name, err)
			}
			if !want {
				if !errors.Is(err, api.ErrPermission) {
					t.Errorf("%s: got %v, want a permission error", name, err)
				} else if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), `"x"`) {
					t.Errorf("%s: message %q is not one line naming the object", name, err)
				}
			}
			if Visible(Caller{UID: r.caller}, Object{Kind: r.kind, Owner: r.owner}) != r.allow[See] {
				t.Errorf("%s: Visible disagrees with Decide(See)", name)
			}
		}
	}
}

func TestRefusalsRevealNoOwner(t *testing.T) {
	err := Decide(Caller{UID: 1002}, See, Object{Kind: VM, Name: "dev", Owner: 1001})
	if err == nil || strings.Contains(err.Error(), "1001") {
		t.Fatalf("refusal %v names the owner", err)
	}
	if got := err.Error(); got != `vm "dev" belongs to another user` {
		t.Errorf("message %q", got)
	}
	err = Decide(Caller{UID: 1002}, Change, Object{Kind: Kernel, Name: "k", Owner: 0})
	if got := err.Error(); got != `kernel "k" is owned by root: only root may replace or delete it` {
		t.Errorf("message %q", got)
	}
}

func TestDaemonAdmin(t *testing.T) {
	if err := DaemonAdmin(Caller{UID: 0}, "stop the daemon"); err != nil {
		t.Errorf("root refused: %v", err)
	}
	err := DaemonAdmin(Caller{UID: 1001}, "stop the daemon")
	if !errors.Is(err, api.ErrPermission) || err.Error() != "only root may stop the daemon" {
		t.Errorf("non-root: %v", err)
	}
}
