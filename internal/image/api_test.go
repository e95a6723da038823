package image

import (
	"context"
	"errors"
	"testing"

	"banger/internal/api"
	"banger/internal/authz"
)

// The caller comes from the request context, like for every service.
func TestAPICallerFromContext(t *testing.T) {
	ctx := authz.WithCaller(context.Background(), authz.Caller{UID: 4321, GID: 8765})
	if c := callerOf(ctx); c.UID != 4321 || c.GID != 8765 {
		t.Fatalf("caller = %+v", c)
	}
	_, err := API{Service: New(t.TempDir(), nil, nil, nil)}.Build(ctx, api.ImageBuildParams{Distro: "debian", Size: "12Q"}, nil)
	if !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("bad size: %v, want ErrInvalid", err)
	}
}
