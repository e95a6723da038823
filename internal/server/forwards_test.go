package server

import (
	"context"

	"banger/internal/api"
)

type fakeForwards struct{ rec }

func (f *fakeForwards) Add(_ context.Context, p api.VMForwardParams) (api.VMForward, error) {
	return api.VMForward{HostPort: p.HostPort, GuestPort: p.GuestPort}, f.note(p)
}
func (f *fakeForwards) Remove(_ context.Context, p api.VMForwardRemoveParams) error {
	return f.note(p)
}
func (f *fakeForwards) List(_ context.Context, ref string) (api.VMForwardListResult, error) {
	return api.VMForwardListResult{Name: ref, Mode: api.ForwardOff, Forwards: []api.VMForward{}}, f.note(ref)
}

var forwardRouteCases = []routeCase{
	{path: "/v1/vm/forward/add", body: map[string]any{"id_or_name": "v", "host_port": 8080, "guest_port": 80, "remap": true},
		want: api.VMForwardParams{IDOrName: "v", HostPort: 8080, GuestPort: 80, Remap: true},
		keys: []string{"forward"}, required: []string{"id_or_name"}, capab: forwardsCap},
	{path: "/v1/vm/forward/list", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"name", "mode", "forwards"},
		required: []string{"id_or_name"}, capab: forwardsCap},
	{path: "/v1/vm/forward/remove", body: map[string]any{"id_or_name": "v", "host_port": 8080},
		want: api.VMForwardRemoveParams{IDOrName: "v", HostPort: 8080}, required: []string{"id_or_name"}, capab: forwardsCap},
}

func init() { routeCases = append(routeCases, forwardRouteCases...) }
