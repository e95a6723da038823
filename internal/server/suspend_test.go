package server

import (
	"context"

	"banger/internal/model"
)

func init() {
	routeCases = append(routeCases,
		routeCase{path: "/v1/vm/suspend", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"vm"}, required: []string{"id_or_name"}, capab: suspendCap},
		routeCase{path: "/v1/vm/resume", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"vm"}, required: []string{"id_or_name"}, capab: suspendCap},
	)
}

func (f *fakeVMs) Suspend(_ context.Context, ref string) (model.VMRecord, error) { return f.vm(ref) }
func (f *fakeVMs) Resume(_ context.Context, ref string) (model.VMRecord, error)  { return f.vm(ref) }
