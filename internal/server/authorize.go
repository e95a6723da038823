package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/model"
)

// This file is the server's door: every request is authorized here, once,
// before its handler (and so any service) runs, with the policy in
// internal/authz (policy.go). Each route declares its rule in doors; a route
// without one is refused to every caller but root. List results are filtered
// here too, so each caller sees only what they may see.

// Owned is the owner of an object a request names, as the store records it.
type Owned struct {
	authz.Object
	// KernelRef is the kernel an image names ("" for other kinds).
	KernelRef string
}

// Owners finds who owns an object by reference (implemented by the daemon
// over the store). A missing object is an api.ErrNotFound error.
type Owners interface {
	Owner(ctx context.Context, kind authz.Kind, ref string) (Owned, error)
}

// target holds every field a door reads from a request body. It is decoded
// leniently (other fields are the handler's to check), with the same JSON
// rules as the handler's decode, so both read the same values; a body it
// cannot decode is refused here.
type target struct {
	IDOrName  string `json:"id_or_name"`
	Name      string `json:"name"`
	ID        string `json:"id"`
	ImageName string `json:"image_name"`
	KernelRef string `json:"kernel_ref"`
	Force     bool   `json:"force"`
	// FromSnapshot is the snapshot vm fork names.
	FromSnapshot string `json:"from_snapshot"`
	// Secrets are the secrets vm create and vm set bind.
	Secrets []api.SecretRef `json:"secrets"`
}

// door decides one request of a non-root caller.
type door func(s *Server, ctx context.Context, c authz.Caller, t target) error

var doors = map[string]door{
	"/v1/ping":     open,
	"/v1/shutdown": admin("stop the daemon"),

	"/v1/kernel/catalog": open, // filtered
	"/v1/kernel/list":    open, // filtered
	"/v1/kernel/show":    existing(authz.Kernel, authz.See, byName),
	"/v1/kernel/pull":    kernelPull,
	"/v1/kernel/import":  ifExists(authz.Kernel, authz.Change, byName),
	"/v1/kernel/delete":  existing(authz.Kernel, authz.Change, byName),

	"/v1/image/list":     open, // filtered
	"/v1/image/show":     existing(authz.Image, authz.See, byIDOrName),
	"/v1/image/pull":     imageCreate,
	"/v1/image/import":   imageCreate,
	"/v1/image/build":    imageCreate,
	"/v1/image/register": imageCreate,
	"/v1/image/delete":   existing(authz.Image, authz.Change, byIDOrName),

	"/v1/vm/create":        vmCreate,
	"/v1/vm/create-status": existing(authz.Operation, authz.See, byID),
	"/v1/vm/list":          open, // filtered
	"/v1/vm/show":          existing(authz.VM, authz.See, byIDOrName),
	"/v1/vm/start":         existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/stop":          existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/restart":       existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/kill":          existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/suspend":       existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/resume":        existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/snapshot":      existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/fork":          vmFork,
	"/v1/snapshot/list":    open, // filtered
	"/v1/snapshot/show":    existing(authz.Snapshot, authz.See, byIDOrName),
	"/v1/snapshot/delete":  existing(authz.Snapshot, authz.Change, byIDOrName),
	"/v1/vm/set":           vmSet,
	"/v1/vm/delete":        existing(authz.VM, authz.Change, byIDOrName),
	"/v1/vm/stats":         existing(authz.VM, authz.See, byIDOrName),
	"/v1/vm/logs":          existing(authz.VM, authz.See, byIDOrName),
	"/v1/vm/ssh":           existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/authorize-key": existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/health":        existing(authz.VM, authz.See, byIDOrName),
	"/v1/vm/ping":          existing(authz.VM, authz.See, byIDOrName),
	"/v1/vm/ports":         existing(authz.VM, authz.See, byIDOrName),
	"/v1/vm/egress":        existing(authz.VM, authz.See, byIDOrName),

	"/v1/vm/forward/add":    existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/forward/list":   existing(authz.VM, authz.See, byIDOrName),
	"/v1/vm/forward/remove": existing(authz.VM, authz.Use, byIDOrName),

	"/v1/secret/add":  open, // the caller owns what they add
	"/v1/secret/list": open, // filtered
	"/v1/secret/show": existing(authz.Secret, authz.See, byName),
	"/v1/secret/rm":   existing(authz.Secret, authz.Change, byName),

	"/v1/vm/workspace/prepare": existing(authz.VM, authz.Use, byIDOrName),
	"/v1/vm/workspace/export":  existing(authz.VM, authz.Use, byIDOrName),
}

// authorize runs the door of path for the caller of ctx.
func (s *Server) authorize(ctx context.Context, path string, body []byte) error {
	c := authz.CallerFrom(ctx)
	if c.Root() {
		return nil
	}
	d, ok := doors[path]
	if !ok {
		return api.Errorf(api.ErrPermission, "%s: only root may call this route", path)
	}
	var t target
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &t); err != nil {
			return api.Errorf(api.ErrInvalid, "bad request body: %v", err)
		}
	}
	err := d(s, ctx, c, t)
	if errors.Is(err, api.ErrPermission) {
		s.log.Info("request refused", "path", path, "uid", c.UID, "pid", c.PID, "reason", err)
	}
	return err
}

func byName(t target) string     { return t.Name }
func byIDOrName(t target) string { return t.IDOrName }
func byID(t target) string       { return t.ID }

func open(*Server, context.Context, authz.Caller, target) error { return nil }

func admin(what string) door {
	return func(_ *Server, _ context.Context, c authz.Caller, _ target) error {
		return authz.DaemonAdmin(c, what)
	}
}

// lookup finds the owner of kind ref. An empty ref is left to the handler,
// which rejects it as a missing field.
func (s *Server) lookup(ctx context.Context, kind authz.Kind, ref string) (Owned, bool, error) {
	if ref == "" {
		return Owned{}, false, nil
	}
	if s.svc.Owners == nil {
		return Owned{}, false, api.Errorf(api.ErrUnavailable, "ownership lookups are not available in this daemon: only root may call it")
	}
	o, err := s.svc.Owners.Owner(ctx, kind, ref)
	if errors.Is(err, api.ErrNotFound) {
		return Owned{}, false, err
	}
	if err != nil {
		return Owned{}, false, fmt.Errorf("look up owner of %s %q: %w", kind, ref, err)
	}
	return o, true, nil
}

// existing needs the named object to exist and the caller to be allowed v on it.
func existing(kind authz.Kind, v authz.Verb, ref func(target) string) door {
	return func(s *Server, ctx context.Context, c authz.Caller, t target) error {
		o, found, err := s.lookup(ctx, kind, ref(t))
		if err != nil || !found {
			return err
		}
		return authz.Decide(c, v, o.Object)
	}
}

// ifExists allows v on the named object when it exists; a free name passes
// (the caller will own what they create).
func ifExists(kind authz.Kind, v authz.Verb, ref func(target) string) door {
	return func(s *Server, ctx context.Context, c authz.Caller, t target) error {
		o, found, err := s.lookup(ctx, kind, ref(t))
		if errors.Is(err, api.ErrNotFound) || (err == nil && !found) {
			return nil
		}
		if err != nil {
			return err
		}
		return authz.Decide(c, v, o.Object)
	}
}

// kernelPull: pulling a kernel that exists returns it (use); --force
// replaces it (change).
func kernelPull(s *Server, ctx context.Context, c authz.Caller, t target) error {
	v := authz.Use
	if t.Force {
		v = authz.Change
	}
	return ifExists(authz.Kernel, v, byName)(s, ctx, c, t)
}

// imageCreate: a name taken by someone else's image is refused, and the
// kernel an image names must be one the caller may use.
func imageCreate(s *Server, ctx context.Context, c authz.Caller, t target) error {
	if err := ifExists(authz.Image, authz.Change, byName)(s, ctx, c, t); err != nil {
		return err
	}
	return existing(authz.Kernel, authz.Use, func(t target) string { return t.KernelRef })(s, ctx, c, t)
}

// vmCreate: the image, and the kernel it names, must be usable by the
// caller, and so must the secrets it binds.
func vmCreate(s *Server, ctx context.Context, c authz.Caller, t target) error {
	if err := useSecrets(s, ctx, c, t); err != nil {
		return err
	}
	img, found, err := s.lookup(ctx, authz.Image, t.ImageName)
	if err != nil || !found {
		return err
	}
	if err := authz.Decide(c, authz.Use, img.Object); err != nil {
		return err
	}
	return existing(authz.Kernel, authz.Use, byName)(s, ctx, c, target{Name: img.KernelRef})
}

// vmSet: the VM must be the caller's to change, and the secrets it binds
// theirs to use.
func vmSet(s *Server, ctx context.Context, c authz.Caller, t target) error {
	if err := existing(authz.VM, authz.Change, byIDOrName)(s, ctx, c, t); err != nil {
		return err
	}
	return useSecrets(s, ctx, c, t)
}

// useSecrets: a caller binds only secrets they may use (their own).
func useSecrets(s *Server, ctx context.Context, c authz.Caller, t target) error {
	for _, r := range t.Secrets {
		if err := existing(authz.Secret, authz.Use, byName)(s, ctx, c, target{Name: r.Name}); err != nil {
			return err
		}
	}
	return nil
}

// keepVisible returns the items of xs the caller may see.
func keepVisible[T any](c authz.Caller, kind authz.Kind, xs []T, owner func(T) int) []T {
	out := xs[:0:0]
	for _, x := range xs {
		if authz.Visible(c, authz.Object{Kind: kind, Owner: owner(x)}) {
			out = append(out, x)
		}
	}
	return out
}

// visible filters a list result to what the caller of ctx may see.
func (s *Server) visible(ctx context.Context, res any) any {
	c := authz.CallerFrom(ctx)
	if c.Root() {
		return res
	}
	switch r := res.(type) {
	case api.VMListResult:
		r.VMs = keepVisible(c, authz.VM, r.VMs, func(v model.VMRecord) int { return v.OwnerUID })
		return r
	case api.SnapshotListResult:
		r.Snapshots = keepVisible(c, authz.Snapshot, r.Snapshots, func(s model.Snapshot) int { return s.OwnerUID })
		return r
	case api.SecretListResult:
		r.Secrets = keepVisible(c, authz.Secret, r.Secrets, func(s model.Secret) int { return s.OwnerUID })
		return r
	case api.ImageListResult:
		r.Images = keepVisible(c, authz.Image, r.Images, func(i model.Image) int { return i.OwnerUID })
		return r
	case api.KernelListResult:
		r.Entries = keepVisible(c, authz.Kernel, r.Entries, func(k api.KernelEntry) int { return k.OwnerUID })
		return r
	case api.KernelCatalogResult:
		// "pulled" says whether the caller can use the stored kernel.
		ks, err := s.svc.Kernels.List(ctx)
		mine := map[string]bool{}
		for _, k := range ks {
			mine[k.Name] = err == nil && authz.Visible(c, authz.Object{Kind: authz.Kernel, Owner: k.OwnerUID})
		}
		out := make([]api.KernelCatalogEntry, len(r.Entries))
		for i, e := range r.Entries {
			e.Pulled = e.Pulled && mine[e.Name]
			out[i] = e
		}
		r.Entries = out
		return r
	}
	return res
}
