package cli

import (
	"context"

	"banger/internal/api"
	"banger/internal/model"
)

func init() {
	readCommands = append(readCommands, []string{"snapshot", "list"}, []string{"snapshot", "show", "s1"})
}

func (f fakeVMs) Snapshot(context.Context, api.VMSnapshotParams) (model.Snapshot, error) {
	return model.Snapshot{}, api.Errorf(api.ErrNotImplemented, "not in this fake")
}
func (f fakeVMs) Fork(context.Context, api.VMForkParams) (api.VMForkResult, error) {
	return api.VMForkResult{}, api.Errorf(api.ErrNotImplemented, "not in this fake")
}
func (f fakeVMs) ListSnapshots(context.Context) ([]model.Snapshot, error) {
	return []model.Snapshot{{Name: "s1", VMName: "v1"}}, f.err
}
func (f fakeVMs) ShowSnapshot(_ context.Context, ref string) (model.Snapshot, error) {
	return model.Snapshot{Name: ref, Fingerprint: map[string]string{"vcpus": "1"}}, f.err
}
func (f fakeVMs) DeleteSnapshot(context.Context, string) error { return f.err }
