package server

import (
	"context"

	"banger/internal/api"
	"banger/internal/model"
)

func init() {
	openRoutes = append(openRoutes, "/v1/snapshot/list")
	routeCases = append(routeCases,
		routeCase{path: "/v1/vm/snapshot", body: map[string]any{"id_or_name": "v", "name": "s", "keep_running": true},
			want: api.VMSnapshotParams{IDOrName: "v", Name: "s", KeepRunning: true}, keys: []string{"snapshot"}, required: []string{"id_or_name"}, capab: snapshotsCap},
		routeCase{path: "/v1/vm/fork", body: map[string]any{"from_snapshot": "s", "count": 3, "name_prefix": "c"},
			want: api.VMForkParams{FromSnapshot: "s", Count: 3, NamePrefix: "c"}, keys: []string{"snapshot", "vms"}, capab: snapshotsCap},
		routeCase{path: "/v1/snapshot/list", want: "snapshot-list", keys: []string{"snapshots"}, capab: snapshotsCap},
		routeCase{path: "/v1/snapshot/show", body: map[string]any{"id_or_name": "s"}, want: "s", keys: []string{"snapshot"}, required: []string{"id_or_name"}, capab: snapshotsCap},
		routeCase{path: "/v1/snapshot/delete", body: map[string]any{"id_or_name": "s"}, want: "s", required: []string{"id_or_name"}, capab: snapshotsCap},
	)
}

func (f *fakeVMs) Snapshot(_ context.Context, p api.VMSnapshotParams) (model.Snapshot, error) {
	return model.Snapshot{Name: p.Name}, f.note(p)
}
func (f *fakeVMs) Fork(_ context.Context, p api.VMForkParams) (api.VMForkResult, error) {
	return api.VMForkResult{VMs: []model.VMRecord{{Name: "c-1"}}}, f.note(p)
}
func (f *fakeVMs) ListSnapshots(context.Context) ([]model.Snapshot, error) {
	return []model.Snapshot{{Name: "s"}}, f.note("snapshot-list")
}
func (f *fakeVMs) ShowSnapshot(_ context.Context, ref string) (model.Snapshot, error) {
	return model.Snapshot{Name: ref}, f.note(ref)
}
func (f *fakeVMs) DeleteSnapshot(_ context.Context, ref string) error { return f.note(ref) }
