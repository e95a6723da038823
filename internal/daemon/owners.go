package daemon

import (
	"context"
	"fmt"

	"banger/internal/authz"
	"banger/internal/secrets"
	"banger/internal/server"
	"banger/internal/store"
)

// owners answers the server's door: who owns the object a request names.
type owners struct {
	st      *store.Store
	secrets *secrets.Service
}

func (o owners) Owner(ctx context.Context, kind authz.Kind, ref string) (server.Owned, error) {
	switch kind {
	case authz.VM:
		v, err := o.st.GetVM(ctx, ref)
		return server.Owned{Object: authz.Object{Kind: kind, Name: ref, Owner: v.OwnerUID}}, err
	case authz.Image:
		i, err := o.st.GetImage(ctx, ref)
		return server.Owned{Object: authz.Object{Kind: kind, Name: ref, Owner: i.OwnerUID}, KernelRef: i.KernelRef}, err
	case authz.Kernel:
		k, err := o.st.GetKernel(ctx, ref)
		return server.Owned{Object: authz.Object{Kind: kind, Name: ref, Owner: k.OwnerUID}}, err
	case authz.Snapshot:
		sn, err := o.st.GetSnapshot(ctx, ref)
		return server.Owned{Object: authz.Object{Kind: kind, Name: ref, Owner: sn.OwnerUID}}, err
	case authz.Secret:
		// As the service resolves it for this caller: their own by name,
		// else by id.
		s, err := o.secrets.Resolve(ctx, ref)
		return server.Owned{Object: authz.Object{Kind: kind, Name: ref, Owner: s.OwnerUID}}, err
	case authz.Operation:
		op, err := o.st.GetOperation(ctx, ref)
		return server.Owned{Object: authz.Object{Kind: kind, Name: ref, Owner: op.OwnerUID}}, err
	}
	return server.Owned{}, fmt.Errorf("owners: unknown kind %q", kind)
}
