package authz

import "banger/internal/api"

// This file is banger's ownership policy: who may see, use or change what.
// The server decides every request with it once, at its door, before any
// service runs; the services do not decide access themselves.
//
//   - root may do everything;
//   - VMs (with their workspaces), create operations, snapshots and
//     secrets belong to their owner alone (binding a secret to a VM is
//     using it);
//   - images and kernels owned by root are shared: every caller may see them
//     and create VMs from them, only root may change (replace, delete) them;
//   - any other user's images and kernels are private to that user.
//
// A refusal is api.ErrPermission with a one-line message that names the
// object and says only that it belongs to another user (or to root).

// Kind is a kind of object the daemon keeps.
type Kind string

// The kinds of owned objects.
const (
	VM        Kind = "vm"
	Image     Kind = "image"
	Kernel    Kind = "kernel"
	Operation Kind = "operation"
	Snapshot  Kind = "snapshot"
	Secret    Kind = "secret"
)

// Verb is what a request does to an object.
type Verb int

// Verbs, from the weakest.
const (
	// See shows or lists the object.
	See Verb = iota
	// Use boots a VM from the object (image, kernel) or acts on it (VM).
	Use
	// Change replaces or deletes the object.
	Change
)

// Object is an owned object as the policy sees it.
type Object struct {
	Kind  Kind
	Name  string
	Owner int // uid
}

// shared reports whether o is usable by every caller: root's images and kernels.
func (o Object) shared() bool {
	return o.Owner == 0 && (o.Kind == Image || o.Kind == Kernel)
}

// Decide returns nil when c may do v to o, else an api.ErrPermission error.
func Decide(c Caller, v Verb, o Object) error {
	switch {
	case c.Root(), c.UID == o.Owner:
		return nil
	case o.shared() && v != Change:
		return nil
	case o.shared():
		return api.Errorf(api.ErrPermission, "%s %q is owned by root: only root may replace or delete it", o.Kind, o.Name)
	default:
		return api.Errorf(api.ErrPermission, "%s %q belongs to another user", o.Kind, o.Name)
	}
}

// Visible reports whether c may see o (the filter of list results).
func Visible(c Caller, o Object) bool { return Decide(c, See, o) == nil }

// DaemonAdmin returns nil when c may act on the daemon as a whole (stop it,
// change daemon-wide settings): root only.
func DaemonAdmin(c Caller, what string) error {
	if c.Root() {
		return nil
	}
	return api.Errorf(api.ErrPermission, "only root may %s", what)
}
